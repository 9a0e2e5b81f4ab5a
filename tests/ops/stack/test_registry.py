"""ops/stack/registry.py: the JVM's configuration, and its database password kept off the command line."""
from __future__ import annotations

from ops.stack.registry import PASSWORD_VARIABLE, Registry
from streams.settings import Settings
from tests.ops.stack.helpers import free_ports, stack_settings


def test_registry_properties_use_postgres_from_settings(settings: Settings) -> None:
    registry = Registry(settings)
    props = registry.system_properties()
    pg_port = settings.postgres_host_port[1]
    assert props["quarkus.http.port"] == str(settings.registry_host_port[1])
    assert props["quarkus.http.host"] == "127.0.0.1"
    assert props["quarkus.management.port"] == "0"  # not Quarkus' default 9000
    assert props["apicurio.storage.kind"] == "sql"
    assert props["apicurio.storage.sql.kind"] == "postgresql"
    assert props["apicurio.datasource.url"] == f"jdbc:postgresql://127.0.0.1:{pg_port}/registry"
    assert props["apicurio.datasource.username"] == "algo"
    for kind in ("group", "artifact", "artifact-version"):
        assert props[f"apicurio.rest.deletion.{kind}.enabled"] == "true"
    assert registry.endpoint() == settings.schema_registry_url


def test_the_database_password_goes_through_the_environment(tmp_path) -> None:
    secret = "s3cret-registry-pw"
    registry = Registry(stack_settings(tmp_path / "run", free_ports(), cache_dir=tmp_path / "cache", password=secret))
    assert not any(secret in value for value in registry.system_properties().values())
    assert "apicurio.datasource.password" not in registry.system_properties()
    assert registry.environment() == {PASSWORD_VARIABLE: secret}
