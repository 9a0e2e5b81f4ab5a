import pytest

from streams.errors import ConfigError
from streams.settings import Settings, parse_interval


def test_defaults_point_at_the_local_stack():
    s = Settings.from_env({})
    assert s.kafka_host_port == ("127.0.0.1", 9092)
    assert s.registry_host_port == ("127.0.0.1", 8081) and s.schema_registry_url.endswith("/apis/ccompat/v7")
    assert s.postgres_host_port == ("127.0.0.1", 5432) and s.redis_host_port == ("127.0.0.1", 6379)


def test_environment_overrides_and_librdkafka_keys():
    s = Settings.from_env({"KAFKA_BOOTSTRAP": "kafka:29092", "DATABASE_URL": "postgresql://u:p@db:6543/x",
                           "BAR_INTERVAL": "15m"})
    assert s.kafka_config({"group.id": "g", "enable.auto.commit": False}) == {
        "bootstrap.servers": "kafka:29092", "client.id": "algo", "group.id": "g", "enable.auto.commit": False}
    assert s.faust_broker == "kafka://kafka:29092"
    assert s.postgres_host_port == ("db", 6543) and s.postgres_user_password_db == ("u", "p", "x")
    assert s.bar_interval_seconds == 900


@pytest.mark.parametrize("text", ["", "d", "0d", "5w", "1.5h"])
def test_bad_intervals_say_what_is_expected(text):
    with pytest.raises(ConfigError, match="interval"):
        parse_interval(text)


def test_bad_numbers_name_the_variable():
    with pytest.raises(ConfigError, match="BRIDGE_PORT"):
        Settings.from_env({"BRIDGE_PORT": "eighty"})
