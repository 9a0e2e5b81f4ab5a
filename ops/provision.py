"""`algo provision`: topics, schemas and SQL migrations; idempotent."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from streams.bus.codecs import registry_client
from streams.errors import ProvisionError
from streams.vault.migrations import migrate
from streams.bus.schemas import schema_str
from streams.settings import Settings
from streams.bus.topics import ALL_TOPICS, TopicSpec


@dataclass
class ProvisionReport:
    topics_created: list[str] = field(default_factory=list)
    topics_existing: list[str] = field(default_factory=list)
    schemas: dict[str, int] = field(default_factory=dict)  # subject -> schema id
    migrations_applied: list[str] = field(default_factory=list)


def _admin_and_topics(settings: Settings) -> tuple[AdminClient, dict]:
    admin = AdminClient(settings.kafka_config({"log_level": 3}))
    try:
        return admin, admin.list_topics(timeout=10).topics
    except KafkaException as error:
        raise ProvisionError(f"Kafka at {settings.kafka_bootstrap} does not answer ({error}); is `algo stack up` done?") from error


def _create_topics(admin: AdminClient, new: list[NewTopic]) -> list[str]:
    """Creates the topics; one that appeared meanwhile is fine. Returns the names created."""
    created = []
    for name, future in (admin.create_topics(new, operation_timeout=30) if new else {}).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as error:
            if error.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise ProvisionError(f"cannot create topic {name}: {error}") from error
    return created


def ensure_topics(settings: Settings, specs: tuple[TopicSpec, ...] = ALL_TOPICS) -> tuple[list[str], list[str]]:
    admin, existing = _admin_and_topics(settings)
    created = _create_topics(admin, [
        NewTopic(s.name, num_partitions=s.partitions or settings.topic_partitions, replication_factor=settings.replication_factor, config=s.config())
        for s in specs if s.name not in existing
    ])
    # existing topics get their configuration brought in line (retention, cleanup policy)
    kept = [s for s in specs if s.name in existing]
    _align_configs(admin, {s.name: s.config() for s in kept})
    return created, [s.name for s in kept]


def _align_configs(admin: AdminClient, configs: dict[str, dict[str, str]]) -> None:
    """Sets these configuration entries on existing topics (others are left as they are)."""
    if not configs:
        return
    resources = [
        ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
            ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET) for name, value in config.items()
        ])
        for topic, config in configs.items()
    ]
    for resource, future in admin.incremental_alter_configs(resources).items():
        try:
            future.result()
        except KafkaException as error:
            raise ProvisionError(f"cannot configure topic {resource.name}: {error}") from error


# Compaction only cleans closed segments: short segments keep a table's changelog near one record
# per key, so a worker's recovery reads the current state, not every update ever made.
CHANGELOG_CONFIG = {"cleanup.policy": "compact", "segment.ms": str(10 * 60 * 1000),
                    "segment.bytes": str(16 * 1024 * 1024), "min.cleanable.dirty.ratio": "0.1"}


def ensure_changelog_topics(settings: Settings, topics: list[tuple[str, int]]) -> list[str]:
    """Creates Faust table changelog topics (compacted, CHANGELOG_CONFIG) before a worker starts,
    and brings existing ones in line with CHANGELOG_CONFIG.

    On a fresh cluster Faust can see its own just-created changelog topic with 0 partitions and
    crash the table's agent with PartitionsMismatch; creating them first avoids that race.
    """
    admin, existing = _admin_and_topics(settings)
    created = _create_topics(admin, [
        NewTopic(name, num_partitions=partitions, replication_factor=settings.replication_factor, config=CHANGELOG_CONFIG)
        for name, partitions in topics if name not in existing
    ])
    _align_configs(admin, {name: CHANGELOG_CONFIG for name, _ in topics if name in existing})
    return created


def register_schemas(settings: Settings, specs: tuple[TopicSpec, ...] = ALL_TOPICS) -> dict[str, int]:
    """Registers each topic's value schema under <topic>-value with BACKWARD compatibility."""
    from confluent_kafka.schema_registry import Schema
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    client = registry_client(settings.schema_registry_url)
    ids = {}
    try:
        client.set_compatibility(level="BACKWARD")
        for spec in specs:
            ids[spec.subject] = client.register_schema(spec.subject, Schema(schema_str(spec.schema), "AVRO"))
            client.set_compatibility(subject_name=spec.subject, level="BACKWARD")
    except SchemaRegistryError as error:
        raise ProvisionError(f"schema registry refused: {error}") from error
    except Exception as error:  # connection errors surface as httpx exceptions
        raise ProvisionError(
            f"schema registry at {settings.schema_registry_url} does not answer ({error}); is `algo stack up` done?"
        ) from error
    return ids


def provision(settings: Settings, progress: Callable[[str], None] = print) -> ProvisionReport:
    report = ProvisionReport()
    progress("topics ...")
    report.topics_created, report.topics_existing = ensure_topics(settings)
    progress("schemas ...")
    report.schemas = register_schemas(settings)
    progress("migrations ...")
    report.migrations_applied = [f"{m.version:03d}_{m.name}" for m in migrate(settings.database_url)]
    return report
