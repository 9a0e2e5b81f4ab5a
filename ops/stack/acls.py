"""Kafka ACLs of the secure profile: each worker's principal may read exactly the topics its agents
read and write exactly the topics they write (and dead-letter), use its own consumer group and its own
Faust topics (`<app id>-<worker>-...`: table changelogs, the assignor's leader topic), and describe
the app's other groups (the event-time barriers read their committed offsets). The bridge reads
every public topic and writes what its REST API publishes. `admin` is a super user and needs none.

tests/ops/stack/test_acls.py checks the reads against the topics the agents subscribe to.
"""
from __future__ import annotations

from dataclasses import replace

from streams.settings import Settings

# worker -> (topics read, topics written); dead-letter is written by all
POLICY: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "bars": (("market.ticks",), ("market.bars",)),
    "persistence": (("market.bars", "agent.signals", "consensus.decisions", "risk.verdicts", "orders", "fills",
                     "agent.logs", "news.items"), ()),
    "technical": (("market.bars",), ("agent.signals",)),
    "quant": (("market.bars",), ("agent.signals",)),
    "analyst": (("news.items",), ("agent.signals", "agent.logs")),
    "consensus": (("agent.signals", "market.bars"), ("consensus.decisions",)),
    "risk": (("consensus.decisions", "market.bars", "backtest.requests"),
             ("risk.verdicts", "backtest.results", "cache.access")),
    "broker": (("risk.verdicts", "market.bars"), ("orders", "fills")),
    "memory": (("cache.access", "market.bars"), ("agent.logs",)),
}
COMBINED = {"signals": ("bars", "technical", "consensus"), "all": tuple(POLICY)}
PUBLIC_TOPICS = ("market.ticks", "market.bars", "news.items", "agent.signals", "consensus.decisions", "risk.verdicts",
                 "orders", "fills", "backtest.requests", "backtest.results", "cache.access", "agent.logs",
                 "dead-letter")
BRIDGE = (PUBLIC_TOPICS, ("market.ticks", "news.items", "backtest.requests", "cache.access"))


def policy(principal: str) -> tuple[set[str], set[str]]:
    if principal == "bridge":
        return set(BRIDGE[0]), set(BRIDGE[1])
    parts = COMBINED.get(principal, (principal,))
    reads = {t for part in parts for t in POLICY[part][0]}
    writes = {t for part in parts for t in POLICY[part][1]} | {"dead-letter"}
    return reads, writes


def bindings(app_id: str, principal: str) -> list:
    """The ALLOW bindings of one principal for the workers of app id `app_id`."""
    from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, ResourcePatternType, ResourceType

    user = f"User:{principal}"

    def allow(kind, name, operation, pattern=ResourcePatternType.LITERAL):
        return AclBinding(kind, name, pattern, user, "*", operation, AclPermissionType.ALLOW)

    reads, writes = policy(principal)
    out = [allow(ResourceType.TOPIC, t, AclOperation.READ) for t in sorted(reads)]
    out += [allow(ResourceType.TOPIC, t, AclOperation.WRITE) for t in sorted(writes)]
    out += [allow(ResourceType.TOPIC, t, AclOperation.DESCRIBE) for t in sorted(reads | writes)]
    out.append(allow(ResourceType.GROUP, f"{app_id}-", AclOperation.DESCRIBE, ResourcePatternType.PREFIXED))
    if principal != "bridge":
        own = f"{app_id}-{principal}"
        out.append(allow(ResourceType.GROUP, own, AclOperation.READ))
        out.append(allow(ResourceType.GROUP, f"{app_id}-gap-read", AclOperation.READ))  # streams.bus.gaps
        out.append(allow(ResourceType.TOPIC, f"{own}-", AclOperation.ALL, ResourcePatternType.PREFIXED))
    return out


def grant(settings: Settings, app_id: str | None = None) -> int:
    """Creates every principal's bindings for `app_id` (default the settings'), as admin; idempotent.
    Returns how many bindings were asked for."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from streams.errors import StackError
    from streams.settings import PRINCIPALS

    app_id = app_id or settings.app_id
    admin = AdminClient(replace(settings, principal="admin").kafka_config({"log_level": 3}))
    wanted = [b for principal in PRINCIPALS if principal != "admin" for b in bindings(app_id, principal)]
    for binding, future in admin.create_acls(wanted, request_timeout=30).items():
        try:
            future.result(timeout=30)
        except KafkaException as error:
            raise StackError(f"kafka: cannot create the ACL {binding}: {error}") from error
    return len(wanted)
