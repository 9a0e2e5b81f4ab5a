"""Every topic of the contract (README.md, "Messages"): name, key, value schema, partitions and retention."""
from __future__ import annotations

from dataclasses import dataclass, field

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    schema: str
    key: str
    cleanup_policy: str = "delete"
    retention_ms: int = 7 * DAY_MS
    partitions: int | None = None  # None: settings.topic_partitions
    doc: str = ""
    extra_config: dict[str, str] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        """Topic name strategy: <topic>-value."""
        return f"{self.name}-value"

    def config(self) -> dict[str, str]:
        config = {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}
        config.update(self.extra_config)
        return config


MARKET_TICKS = TopicSpec("market.ticks", "MarketTick", "symbol", doc="raw ticks, from replay or the bridge")
MARKET_BARS = TopicSpec("market.bars", "Bar", "symbol", retention_ms=-1, doc="OHLCV bars, kept forever")
NEWS_ITEMS = TopicSpec(
    "news.items", "NewsItem", "news id", cleanup_policy="compact,delete", retention_ms=365 * DAY_MS,
    doc="news, latest version per id",
)
AGENT_SIGNALS = TopicSpec("agent.signals", "AgentSignal", "symbol", retention_ms=30 * DAY_MS)
CONSENSUS_DECISIONS = TopicSpec("consensus.decisions", "ConsensusDecision", "symbol", retention_ms=30 * DAY_MS)
RISK_VERDICTS = TopicSpec("risk.verdicts", "RiskVerdict", "symbol", retention_ms=30 * DAY_MS)
ORDERS = TopicSpec("orders", "Order", "symbol", retention_ms=-1)
FILLS = TopicSpec("fills", "Fill", "symbol", retention_ms=-1)
BACKTEST_REQUESTS = TopicSpec(
    "backtest.requests", "BacktestRequest", "request id", cleanup_policy="compact", doc="state-like: one per id"
)
BACKTEST_RESULTS = TopicSpec(
    "backtest.results", "BacktestResult", "request id", cleanup_policy="compact", doc="state-like: one per id"
)
CACHE_ACCESS = TopicSpec("cache.access", "CacheAccess", "key", retention_ms=3 * DAY_MS)
AGENT_LOGS = TopicSpec("agent.logs", "AgentLog", "agent", retention_ms=14 * DAY_MS)
DEAD_LETTER = TopicSpec("dead-letter", "DeadLetter", "source topic", retention_ms=30 * DAY_MS, partitions=1)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    MARKET_TICKS, MARKET_BARS, NEWS_ITEMS, AGENT_SIGNALS, CONSENSUS_DECISIONS, RISK_VERDICTS,
    ORDERS, FILLS, BACKTEST_REQUESTS, BACKTEST_RESULTS, CACHE_ACCESS, AGENT_LOGS, DEAD_LETTER,
)
BY_NAME = {spec.name: spec for spec in ALL_TOPICS}


def topic_spec(name: str) -> TopicSpec:
    from streams.errors import ConfigError

    try:
        return BY_NAME[name]
    except KeyError:
        raise ConfigError(f"unknown topic {name!r}; known topics: {', '.join(BY_NAME)}") from None
