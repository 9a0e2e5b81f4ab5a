"""One tiering round against the real Redis and the store: read Redis's used memory; above the high
watermark, score candidates in batches with the eviction policy and demote (or drop) the victims
through the TieredStore until used memory is under the low watermark. The decisions themselves are
streams.memory.tiering's; this module does the I/O. The Faust agent (streams.memory.agents) and
benchmarks/tiering.py both run rounds through Tierer, so the benchmark measures the agent's logic.

Also the Memory agent's Prometheus metrics and the AgentLog records of its rounds."""
from __future__ import annotations

import contextlib
import json
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterator

import redis.asyncio as aioredis
import redis.exceptions
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streams.bus.ids import derived_id
from streams.errors import ServiceUnavailable
from streams.memory import keys
from streams.memory.tiering import DEMOTE, AccessState, Decision, Watermarks
from streams.outages import first_line

AGENT = "memory"
REDIS = "Redis"
MAX_BATCHES = 512  # per round: a round ends even if the policy keeps choosing keys that free nothing
LOGGED_DECISIONS = 200  # decisions written into one round's AgentLog (the counts cover all of them)


@contextlib.contextmanager
def redis_errors() -> Iterator[None]:
    """Redis refusing connections or timing out becomes ServiceUnavailable (the agent waits it out)."""
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
        raise ServiceUnavailable(REDIS, first_line(error)) from error


async def redis_memory(client: aioredis.Redis, fallback_maxmemory: int) -> tuple[int, int]:
    """(used_memory, maxmemory) in bytes: INFO memory, and CONFIG GET maxmemory (fallback when CONFIG
    is refused or maxmemory is 0, i.e. unlimited)."""
    with redis_errors():
        info = await client.info("memory")
        try:
            maximum = int((await client.config_get("maxmemory")).get("maxmemory") or 0)
        except redis.exceptions.ResponseError:  # CONFIG renamed or disabled (managed Redis)
            maximum = 0
    return int(info["used_memory"]), maximum or fallback_maxmemory


class MemoryMetrics:
    """The Memory agent's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.accesses = Counter("algo_memory_accesses", "Store accesses seen on cache.access", ["op", "tier"],
                                registry=r)
        self.hit_ratio = Gauge("algo_memory_hit_ratio", "Share of GETs answered from Redis, since the agent started",
                               registry=r)
        self.demotions = Counter("algo_memory_demotions", "Keys demoted from Redis to Postgres", registry=r)
        self.drops = Counter("algo_memory_drops", "Keys deleted from both tiers", registry=r)
        self.rounds = Counter("algo_memory_rounds", "Tiering rounds (used memory was above the high watermark)",
                              registry=r)
        self.decision_seconds = Histogram(
            "algo_memory_decision_seconds", "Scoring and choosing one batch of candidates (no Redis/Postgres I/O)",
            buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05), registry=r)
        self.used_bytes = Gauge("algo_memory_redis_used_bytes", "Redis used_memory", registry=r)
        self.max_bytes = Gauge("algo_memory_redis_max_bytes", "Redis maxmemory", registry=r)
        self.policy = Gauge("algo_memory_policy_info", "The served eviction policy (value 1)", ["version"], registry=r)


@dataclass
class RoundReport:
    used_before: int
    used_after: int
    maximum: int
    policy_version: str
    decisions: list[tuple[Decision, bool]] = field(default_factory=list)  # (decision, carried out)
    scored: int = 0
    batches: int = 0
    decision_seconds: float = 0.0
    seconds: float = 0.0

    def count(self, action: str) -> int:
        return sum(1 for decision, done in self.decisions if done and decision.action == action)

    def log_record(self, stats: dict[str, object]) -> dict:
        """The AgentLog of the round (agent.logs -> Postgres agent_logs -> the dashboard)."""
        shown = self.decisions[:LOGGED_DECISIONS]
        demoted, dropped = self.count(DEMOTE), self.count("drop")
        context = {
            "kind": "tiering",
            "keys": json.dumps([d.key for d, _ in shown]),
            "actions": json.dumps([d.action if done else f"{d.action}-skipped" for d, done in shown]),
            "scores": json.dumps([None if d.score == float("inf") else round(d.score, 4) for d, _ in shown]),
            "demoted": str(demoted), "dropped": str(dropped), "scored": str(self.scored), "batches": str(self.batches),
            "used_before": str(self.used_before), "used_after": str(self.used_after), "maxmemory": str(self.maximum),
            "decision_us_per_eviction": f"{1e6 * self.decision_seconds / max(len(self.decisions), 1):.1f}",
            "seconds": f"{self.seconds:.4f}", "policy_version": self.policy_version,
            **{name: str(value) for name, value in stats.items()},
        }
        # derived from the round's inputs and choices: the same round sent twice is one row in agent_logs
        log_id = derived_id("memory-tiering", self.policy_version, self.maximum, self.used_before, context["keys"],
                            context["actions"])
        return {
            "log_id": log_id, "agent": AGENT, "ts": datetime.now(timezone.utc), "level": "INFO",
            "message": (f"tiering: {demoted} demoted, {dropped} dropped; used {self.used_before} -> {self.used_after} "
                        f"of {self.maximum} bytes"),
            "context": context,
        }


def stats_record(state: AccessState, totals: dict[str, int], used: int, maximum: int, policy_version: str) -> dict:
    """The periodic AgentLog of the agent's counters (the dashboard's hit ratio when no round runs)."""
    ratio = state.hit_ratio()
    fields = {k: str(v) for k, v in stats_fields(state, totals).items()}
    return {
        "log_id": derived_id("memory-stats", policy_version, used, maximum, json.dumps(fields, sort_keys=True)), "agent": AGENT, "ts": datetime.now(timezone.utc), "level": "INFO",
        "message": f"memory: hit ratio {'-' if ratio is None else f'{ratio:.3f}'}, used {used} of {maximum} bytes",
        "context": {"kind": "stats", **fields,
                    "used": str(used), "maxmemory": str(maximum), "policy_version": policy_version},
    }


def stats_fields(state: AccessState, totals: dict[str, int]) -> dict[str, object]:
    ratio = state.hit_ratio()
    return {"hit_ratio": "" if ratio is None else f"{ratio:.4f}", "gets_hot": state.gets["HOT"],
            "gets_cold": state.gets["COLD"], "gets_miss": state.gets["MISS"], "resident_keys": len(state.resident),
            "demotions_total": totals["demoted"], "drops_total": totals["dropped"], "rounds_total": totals["rounds"]}


class Tierer:
    """Rounds of tiering over `store` (a TieredStore: demote/drop) and `client` (the same Redis).
    `unseen_samples` RANDOMKEY probes per batch find keys in Redis the access log never showed the
    agent (written before it started); 0 turns that off."""

    def __init__(self, settings, store, client: aioredis.Redis, policy, *, state: AccessState | None = None,
                 metrics: MemoryMetrics | None = None, seed: int = 0, unseen_samples: int = 4) -> None:
        self.memory_settings = settings.memory
        self.store, self.client, self.policy = store, client, policy
        self.state = state if state is not None else AccessState()
        self.metrics = metrics
        self.marks = Watermarks(settings.memory.high_watermark, settings.memory.low_watermark)
        self.rng = random.Random(seed)
        self.unseen_samples = unseen_samples
        self.totals = {"demoted": 0, "dropped": 0, "rounds": 0}
        self.decision_seconds = 0.0  # scoring and choosing, all rounds (no I/O)
        if metrics is not None:
            metrics.policy.labels(policy.version).set(1)

    async def memory(self) -> tuple[int, int]:
        used, maximum = await redis_memory(self.client, self.memory_settings.maxmemory_bytes())
        if self.metrics is not None:
            self.metrics.used_bytes.set(used)
            self.metrics.max_bytes.set(maximum)
        return used, maximum

    async def _unseen(self) -> list[tuple[str, int]]:
        found: dict[str, int] = {}
        with redis_errors():
            for _ in range(self.unseen_samples):
                raw = await self.client.randomkey()
                if raw is None:
                    break
                key = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
                # only the store's keys (named by keys.cache_key): a shared Redis may hold others'
                if key in found or self.state.knows(key) or keys.kind_of(key) == keys.OTHER:
                    continue
                try:
                    found[key] = int(await self.client.strlen(key))
                except redis.exceptions.ResponseError:  # not a string: not the store's
                    continue
        return list(found.items())

    async def round(self) -> RoundReport | None:
        """One round; None when used memory is at or under the high watermark."""
        started = time.perf_counter()
        used, maximum = await self.memory()
        if not self.marks.over_high(used, maximum):
            return None
        report = RoundReport(used, used, maximum, self.policy.version)
        candidates = self.memory_settings.candidates
        for _ in range(MAX_BATCHES):
            need = self.marks.bytes_to_free(used, maximum)
            if need <= 0:
                break
            unseen = await self._unseen() if self.unseen_samples else []
            chosen_at = time.perf_counter()
            decisions, scored = self.state.batch(self.policy, self.rng, candidates, need, unseen)
            spent = time.perf_counter() - chosen_at
            report.decision_seconds += spent
            report.scored += scored
            report.batches += 1
            if self.metrics is not None:
                self.metrics.decision_seconds.observe(spent)
            if not decisions:
                break  # nothing left that the agent knows to be in Redis
            for decision in decisions:
                done = await (self.store.demote(decision.key) if decision.action == DEMOTE
                              else self.store.drop(decision.key))
                self.state.evicted(decision)
                report.decisions.append((decision, bool(done)))
            used, maximum = await self.memory()
        report.used_after = used
        report.seconds = time.perf_counter() - started
        demoted, dropped = report.count(DEMOTE), report.count("drop")
        self.totals["demoted"] += demoted
        self.totals["dropped"] += dropped
        self.totals["rounds"] += 1
        self.decision_seconds += report.decision_seconds
        if self.metrics is not None:
            self.metrics.demotions.inc(demoted)
            self.metrics.drops.inc(dropped)
            self.metrics.rounds.inc()
        return report

    def observe(self, record: dict) -> None:
        """One CacheAccess record."""
        self.state.observe(record["key"], record["op"], record["tier"], record["size_bytes"], record.get("kind") or "",
                           record.get("symbol"))
        if self.metrics is not None:
            self.metrics.accesses.labels(record["op"], record["tier"]).inc()
            ratio = self.state.hit_ratio()
            if ratio is not None:
                self.metrics.hit_ratio.set(ratio)

    def stats(self) -> dict[str, object]:
        return stats_fields(self.state, self.totals)
