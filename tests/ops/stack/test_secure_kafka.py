"""Integration: the secure profile's Kafka (ALGO_PROFILE=secure) on ports of its own: SASL/SCRAM-SHA-512
over TLS with a locally made CA, the StandardAuthorizer with no ACL meaning no access, and each
worker's principal allowed exactly its own topics and group (ops/stack/acls.py)."""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import stat
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from ops.provision import ensure_topics
from streams.settings import PRINCIPALS
from tests.ops.stack.helpers import secure_part

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    with secure_part(tmp_path_factory.mktemp("secure"), "kafka") as settings:
        ensure_topics(settings)  # as admin
        yield settings


def as_principal(settings, principal: str, **overrides):
    return dataclasses.replace(settings, principal=principal).kafka_config({"log_level": 0, **overrides})


def produce_error(config: dict, topic: str):
    producer = Producer({**config, "message.timeout.ms": 10_000})
    outcome = []
    producer.produce(topic, key=b"k", value=b"v", on_delivery=lambda error, _m: outcome.append(error))
    producer.flush(15)
    assert outcome, f"no delivery report for {topic}"
    return outcome[0]


def fetch_error(config: dict, topic: str, group: str):
    consumer = Consumer({**config, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.subscribe([topic])
        for _ in range(20):
            message = consumer.poll(0.5)
            if message is not None and message.error():
                return message.error()
            if message is not None:
                return None
        return None
    except KafkaException as error:
        return error.args[0]
    finally:
        consumer.close()


def test_the_material_is_private_and_the_certificate_names_loopback(secure):
    from cryptography import x509

    folder = secure.secrets_folder
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("ca.pem", "server.pem", "credentials.json"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    assert set(json.loads((folder / "credentials.json").read_text())) == set(PRINCIPALS)
    certificate = x509.load_pem_x509_certificates((folder / "server.pem").read_bytes())[0]
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    properties = (secure.run_dir / "kafka" / "server.properties")
    assert stat.S_IMODE(properties.stat().st_mode) == 0o600  # it holds the brokers' own password


def test_a_client_without_credentials_or_with_a_wrong_password_is_refused(secure):
    bootstrap = secure.kafka_bootstrap
    with pytest.raises(KafkaException):  # no TLS, no SASL: the broker hangs up
        AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=5)
    with pytest.raises(KafkaException):  # TLS but no SASL
        AdminClient({"bootstrap.servers": bootstrap, "security.protocol": "SSL", "log_level": 0,
                     "ssl.ca.location": str(secure.secrets_folder / "ca.pem")}).list_topics(timeout=5)
    with pytest.raises(KafkaException):
        AdminClient(as_principal(secure, "bars", **{"sasl.password": "not-the-password"})).list_topics(timeout=5)
    # the right password, over TLS checked against the local CA: answered
    assert "market.ticks" in AdminClient(as_principal(secure, "bars")).list_topics(timeout=10).topics


def test_a_worker_writes_and_reads_only_its_own_topics_and_group(secure):
    bars = as_principal(secure, "bars")
    assert produce_error(bars, "market.bars") is None
    assert produce_error(bars, "dead-letter") is None
    refused = produce_error(bars, "orders")
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    group = f"{secure.app_id}-bars"
    assert fetch_error(bars, "market.ticks", group) is None
    read_other = fetch_error(bars, "orders", group)
    assert read_other is not None and read_other.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    other_group = fetch_error(bars, "market.ticks", f"{secure.app_id}-broker")
    assert other_group is not None and other_group.code() == KafkaError.GROUP_AUTHORIZATION_FAILED
    # the broker worker may write orders, and not the bars it reads
    broker = as_principal(secure, "broker")
    assert produce_error(broker, "orders") is None
    refused = produce_error(broker, "market.bars")
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_a_worker_may_make_its_own_faust_topics_and_no_others(secure):
    from confluent_kafka.admin import NewTopic

    admin = AdminClient(as_principal(secure, "technical"))
    own = f"{secure.app_id}-technical-symbol_to_recent_closes-changelog-{uuid.uuid4().hex[:6]}"
    other = f"{secure.app_id}-broker-account_to_book-changelog-{uuid.uuid4().hex[:6]}"
    futures = admin.create_topics([NewTopic(own, 1, 1), NewTopic(other, 1, 1)], operation_timeout=20)
    futures[own].result(30)
    with pytest.raises(KafkaException) as refused:
        futures[other].result(30)
    assert refused.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_a_faust_worker_runs_as_its_principal_over_sasl_ssl(secure, provisioned, tmp_path):
    """The bar worker, as principal `bars`, turns ticks into bars on the secure Kafka (the shared
    stack's registry encodes them)."""
    from datetime import timedelta

    from streams.bus.codecs import CodecRegistry
    from tests import fixtures
    from tests.kafka_tools import Worker, ends, produce_many, read_from, wait_for

    settings = dataclasses.replace(secure, schema_registry_url=provisioned.schema_registry_url)
    codec = CodecRegistry(settings.schema_registry_url).for_topic("market.ticks")
    symbol, day0 = f"SEC{uuid.uuid4().hex[:5].upper()}", fixtures.T0.replace(hour=0, minute=0)
    bars_start = ends(settings, "market.bars")
    worker = Worker("bars", tmp_path / "bars.log", ALGO_PROFILE="secure", ALGO_APP_ID=settings.app_id,
                    ALGO_SECRETS_DIR=str(settings.secrets_folder), KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
                    SCHEMA_REGISTRY_URL=settings.schema_registry_url, ALGO_RUN_DIR=str(settings.run_dir))
    try:
        produce_many(settings, "market.ticks", [(symbol.encode(), codec.encode(fixtures.tick(
            symbol=symbol, ts=day0 + timedelta(days=d, hours=1), price=10.0 + d, size=1.0, seq=d))) for d in range(3)])
        wait_for(lambda: len([b for _, b in read_from(settings, bars_start) if b["symbol"] == symbol]) == 3,
                 timeout=90, what="three bars made by the secure worker")
    finally:
        worker.stop()
    assert "TOPIC_AUTHORIZATION_FAILED" not in worker.log() and "AuthorizationFailed" not in worker.log()
