"""The one place that reads the environment.

Every endpoint has a default pointing at the local stack (`algo stack up`), so the same code runs
against docker-compose or a remote cluster by changing environment variables only. The domain
settings (RiskSettings, BrokerSettings, ConsensusRules) are frozen parts of the one Settings, read
here too and used by their agents as `settings.risk`, `settings.broker`, `settings.consensus`.

Start-up fails with one line naming the variable when a value is malformed (not a number, not one
of the choices, out of range) and when a variable under one of the project's own prefixes
(OWN_PREFIXES: ALGO_ ANALYST_ BAR_ BRIDGE_ BROKER_ CONSENSUS_ PERSIST_ QUANT_ RISK_) is not a setting: a
typo such as RISK_MAX_POSITON must not leave a limit at its default unnoticed.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping
from urllib.parse import urlsplit

from streams.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# A checkout keeps its run dir and models beside the code; an installed wheel's folder (site-packages)
# is no place for them: there the run dir goes to the cache and models under the current directory.
IN_CHECKOUT = (PROJECT_ROOT / "setup.py").is_file()
PROFILES = ("local", "secure")
# who connects in the secure profile: the operator (a Kafka super user), the bridge, and each worker
# as itself (`algo worker NAME` is principal NAME); tests/streams/test_settings.py checks the workers
PRINCIPALS = ("admin", "bridge", "bars", "persistence", "risk", "technical", "consensus", "broker", "quant",
              "analyst", "memory", "signals", "all")
CREDENTIALS_FILE = "credentials.json"

_INTERVAL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(text: str) -> int:
    """'1d' -> 86400 seconds; accepts s, m, h, d suffixes."""
    text = text.strip().lower()
    if len(text) < 2 or text[-1] not in _INTERVAL_UNITS or not text[:-1].isdigit():
        raise ConfigError(f"bad interval {text!r}: use a number and one of s, m, h, d (e.g. 1d, 15m)")
    seconds = int(text[:-1]) * _INTERVAL_UNITS[text[-1]]
    if seconds <= 0:
        raise ConfigError(f"bad interval {text!r}: must be positive")
    return seconds


def _host_port(netloc: str, default_port: int, what: str) -> tuple[str, int]:
    host, _, port = netloc.rpartition(":") if ":" in netloc else (netloc, "", "")
    try:
        return host or "127.0.0.1", int(port) if port else default_port
    except ValueError:
        raise ConfigError(f"{what}: bad port in {netloc!r}") from None


# Variables under these prefixes are this project's, so one that no setting reads is an error. KAFKA_,
# POSTGRES_, REDIS_ and TOPIC_ are not among them: the services' images and tools read their own.
OWN_PREFIXES = ("ALGO_", "ANALYST_", "BAR_", "BRIDGE_", "BROKER_", "CONSENSUS_", "MEMORY_", "PERSIST_", "QUANT_",
                "RISK_")
# ours by prefix, but read by the build (setup.py) and the test suite, never by the running code
NOT_SETTINGS = frozenset({"ALGO_DEBUG_BUILD", "BRIDGE_FUZZ_EXAMPLES"})
# variables that were settings once, with what replaced them
RETIRED = {"ALGO_WORKER": "name the worker on the command line: `algo worker NAME`",
           "CONSENSUS_MIN_CHANGE": "the consensus decides every bar; the risk agent trades only when the target moves by "
                                   "RISK_MIN_REBALANCE (a fraction of equity)"}
MIN_API_TOKEN_LENGTH = 16
# app ids and namespaces name Kafka consumer groups and changelog topics
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class RiskSettings:
    """The Risk agent's paper account and pre-trade limits: RISK_<FIELD> (RISK_MAX_VAR=0.02, ...)."""
    account: str = "paper"
    initial_cash: float = 100_000.0
    max_position_notional: float = 25_000.0
    max_gross_exposure: float = 1.0
    max_net_exposure: float = 1.0
    max_order_notional: float = 20_000.0
    max_orders_per_window: int = 30
    rate_window_seconds: float = 86_400.0
    max_daily_loss: float = 0.03
    max_drawdown: float = 0.25
    max_var: float = 0.02
    var_confidence: float = 0.99
    lot_size: float = 1.0
    min_rebalance: float = 0.1  # trade only when the target and the held (plus ordered) position differ this much
    max_wait_s: float = 30.0  # with no consensus worker running this long, decisions stop waiting for other symbols

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "RiskSettings":
        """The risk part of Settings.from_env(env): the same parsing and checks."""
        return Settings.from_env(env).risk


@dataclass(frozen=True)
class BrokerSettings:
    """The paper broker's costs (BROKER_FEE_BPS, BROKER_SLIPPAGE_BPS). Its account and starting cash
    are the risk agent's (RISK_ACCOUNT, RISK_INITIAL_CASH): both keep the one paper book."""
    account: str = "paper"
    initial_cash: float = 100_000.0
    fee_bps: float = 1.0
    slippage_bps: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "BrokerSettings":
        """The broker part of Settings.from_env(env): the same parsing and checks."""
        return Settings.from_env(env).broker


def _check_llm(spec: str) -> None:
    if not spec:
        return
    kind, _, target = spec.partition(":")
    if kind not in ("openai", "llamacpp") or not target.strip():
        raise ConfigError("use openai:<model> (an OpenAI-compatible server, see ANALYST_LLM_BASE_URL) or "
                          "llamacpp:<path to a .gguf file>, or leave it unset for the offline scorer")


@dataclass(frozen=True)
class AnalystSettings:
    """The Analyst's chain: ANALYST_<FIELD>. `llm` empty = the offline scorer (the default); else
    openai:<model> (with llm_base_url for any OpenAI-compatible server, key in llm_api_key) or
    llamacpp:<gguf path> (the optional llama-cpp-python extra)."""
    llm: str = ""
    llm_base_url: str = ""
    llm_api_key: str = field(default="", repr=False)  # a secret: never in a repr or a log
    llm_timeout_s: float = 60.0
    scorer_dir: str = ""  # empty: the classifier shipped in streams/analyst/data/scorer/
    context_k: int = 10  # retrieved items per vote
    window_s: float = 7 * 86400.0  # news older than this, before the vote, does not count
    half_life_s: float = 2 * 86400.0  # an item's weight halves every half_life_s before the vote
    min_polarity: float = 0.15  # |aggregate sentiment| at least this -> BUY/SELL, else HOLD
    duplicate_similarity: float = 0.95  # a new item this close to an earlier one is a repeat: weight 0.1


@dataclass(frozen=True)
class MemorySettings:
    """The Memory agent and the tiered store (Redis hot, Postgres cold): MEMORY_<FIELD>. Redis runs
    with maxmemory and noeviction, so only the agent evicts: it demotes once used memory passes
    high_watermark of maxmemory, down to low_watermark; the rest is the margin for writes between
    its rounds."""
    redis_maxmemory: str = "256mb"  # Redis's own notation (bytes, kb, mb, gb); written to redis.conf
    high_watermark: float = 0.85
    low_watermark: float = 0.75
    check_interval_s: float = 0.5  # how often the agent reads Redis's used memory
    candidates: int = 128  # eviction candidates scored per batch (as evaluated: streams.memory.simulator)
    access_batch_size: int = 200  # cache.access records per produce
    access_flush_s: float = 1.0  # ... or at least this often
    model_dir: str = ""  # empty: the policy shipped in streams/memory/data/policy/
    value_max_bytes: int = 4 * 1024 * 1024  # larger values stay cold (never admitted to Redis)
    bridge_max_age_s: float = 1.0  # the bridge's cached query results are this fresh at most (dashboard polling)
    backtest_max_age_s: float = 300.0  # a cached backtest result is reused this long (new bars may change it)
    metrics_host: str = "127.0.0.1"  # where the memory worker serves Prometheus metrics (0.0.0.0 in a container)
    metrics_port: int = 9464  # ... and on which port; 0 = off
    stats_interval_s: float = 10.0  # how often the agent logs its hit ratio and counters to agent.logs

    def __post_init__(self) -> None:
        self.maxmemory_bytes()  # a bad size fails when the settings are built, not in the worker
        if not 0 < self.low_watermark < self.high_watermark < 1:
            raise ConfigError(f"MEMORY_LOW_WATERMARK={self.low_watermark} and MEMORY_HIGH_WATERMARK="
                              f"{self.high_watermark}: need 0 < low < high < 1 (fractions of maxmemory)")
        if self.candidates < 2:
            raise ConfigError(f"MEMORY_CANDIDATES={self.candidates}: need at least 2 to choose between")

    def maxmemory_bytes(self) -> int:
        """redis_maxmemory in bytes, read the way Redis reads it (k=1000, kb=1024, ...)."""
        match = re.fullmatch(r"\s*(\d+)\s*(b|k|kb|m|mb|g|gb)?\s*", self.redis_maxmemory.lower())
        if match is None or int(match.group(1)) == 0:
            raise ConfigError(f"MEMORY_REDIS_MAXMEMORY={self.redis_maxmemory!r}: use a positive size such as "
                              "64mb, 512kb or 1gb (Redis's notation)")
        unit = {None: 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3,
                "gb": 1024**3}[match.group(2)]
        return int(match.group(1)) * unit


@dataclass(frozen=True)
class ConsensusRules:
    """How the Consensus agent weighs votes and when it decides: CONSENSUS_WEIGHTS (technical=1,quant=2),
    CONSENSUS_BAR_AGENTS (the agents that vote on every bar: each bar waits for their votes),
    CONSENSUS_AGENT_TIMEOUT_S (a bar-driven agent silent this long is not waited for), CONSENSUS_WINDOW_S,
    CONSENSUS_MIN_SCORE, CONSENSUS_MIN_AGREEMENT, CONSENSUS_MAX_POSITION."""
    weights: Mapping[str, float] = field(default_factory=lambda: {"technical": 1.0, "quant": 1.0, "analyst": 1.0})
    default_weight: float = 0.0  # agents not listed do not count
    window_s: float = 3 * 86400.0
    min_score: float = 0.15
    min_agreement: float = 0.6
    max_position: float = 0.2
    prior_calls: float = 10.0
    bar_agents: tuple[str, ...] = ("technical", "quant")
    agent_timeout_s: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "ConsensusRules":
        """The consensus part of Settings.from_env(env): the same parsing and checks."""
        return Settings.from_env(env).consensus

    def weight(self, agent: str) -> float:
        return float(self.weights.get(agent, self.default_weight))


def parse_weights(text: str) -> dict[str, float]:
    """'technical=1,quant=2' -> {'technical': 1.0, 'quant': 2.0}; weight 0 switches an agent off."""
    weights = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"CONSENSUS_WEIGHTS: {part!r} is not agent=weight") from None
        if not name.strip() or not math.isfinite(weights[name.strip()]):
            raise ConfigError(f"CONSENSUS_WEIGHTS: {part!r} is not agent=weight")
        if weights[name.strip()] < 0:
            raise ConfigError(f"CONSENSUS_WEIGHTS: {part!r} is negative")
    return weights


class _Environment:
    """Typed reads of one environment mapping, remembering which names were read (the rest of the
    project's prefixes are unknown names) and naming the variable in every error."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env, self.read = env, set()

    def text(self, name: str, default: str | None) -> str | None:
        self.read.add(name)
        return self.env.get(name, default)

    def number(self, name: str, default, kind: type = float, minimum: float | None = None,
               maximum: float | None = None):
        self.read.add(name)
        raw = self.env.get(name)
        if raw is None:
            return default
        try:
            value = kind(raw.strip())
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not math.isfinite(value):
            raise ConfigError(f"{name}={raw!r} is not a finite number")
        if minimum is not None and value < minimum or maximum is not None and value > maximum:
            bounds = f"at least {minimum:g}" if maximum is None else f"between {minimum:g} and {maximum:g}"
            raise ConfigError(f"{name}={raw!r}: must be {bounds}")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default)
        if value not in choices:
            raise ConfigError(f"{name}={value!r}: use {' or '.join(choices)}")
        return value

    def checked(self, name: str, default: str, check: Callable[[str], object]) -> str:
        """The value, after `check` raised ConfigError for a bad one (prefixed here with the variable)."""
        value = self.text(name, default)
        try:
            check(value)
        except ConfigError as error:
            raise ConfigError(f"{name}={value!r}: {error}") from None
        return value

    def domain(self, cls: type, prefix: str, names: tuple[str, ...] | None = None, **given):
        """A frozen domain settings object: field f from <prefix><F> (typed by its default), the
        fields in `given` as they are. Numbers are never negative there (limits, costs, fractions)."""
        defaults, values = cls(), dict(given)
        for f in dataclasses.fields(cls):
            if f.name in given or (names is not None and f.name not in names):
                continue
            default, name = getattr(defaults, f.name), f"{prefix}{f.name.upper()}"
            values[f.name] = (self.text(name, default) if isinstance(default, str)
                              else self.number(name, default, type(default), minimum=0))
        return cls(**values)

    def unknown(self) -> None:
        """Raises for the first variable under the project's prefixes that is not a setting."""
        for name in sorted(self.env):
            if not name.startswith(OWN_PREFIXES) or name in self.read or name in NOT_SETTINGS:
                continue
            if name.startswith("BROKER_") and name in faust_env_names():
                continue
            if name in RETIRED:
                raise ConfigError(f"{name} is no longer read: {RETIRED[name]}")
            close = difflib.get_close_matches(name, sorted(self.read), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{name} is not a setting{hint}; unset it or fix its name "
                              f"(variables under {', '.join(OWN_PREFIXES)} are this project's)")


@functools.lru_cache(maxsize=1)
def faust_env_names() -> frozenset[str]:
    """The variables Faust itself reads (BROKER_COMMIT_INTERVAL, BROKER_SESSION_TIMEOUT, ...): they
    share our BROKER_ prefix but tune the Faust worker, so they are not typos of ours."""
    from faust.types.settings import Settings as FaustSettings

    return frozenset(name for value in vars(FaustSettings).values() if (name := getattr(value, "env_name", None)))


def _name_check(value: str) -> None:
    if not _NAME.fullmatch(value):
        raise ConfigError("use letters, digits, '.', '_' and '-' (it names Kafka groups and topics)")


def _principal_check(value: str) -> None:
    if value and value not in PRINCIPALS:
        raise ConfigError(f"one of {', '.join(PRINCIPALS)}")


def _check_api_token(token: str) -> None:
    if token and len(token) < MIN_API_TOKEN_LENGTH:
        raise ConfigError(f"ALGO_API_TOKEN is {len(token)} characters: use at least {MIN_API_TOKEN_LENGTH} "
                          "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(24))'`), or leave it "
                          "unset and the bridge generates one")


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str = "127.0.0.1:9092"
    schema_registry_url: str = "http://127.0.0.1:8081/apis/ccompat/v7"
    database_url: str = "postgresql://algo:algo@127.0.0.1:5432/algo"
    redis_url: str = "redis://127.0.0.1:6379/0"
    bridge_host: str = "127.0.0.1"
    bridge_port: int = 8000
    run_dir: Path = PROJECT_ROOT / ".run" if IN_CHECKOUT else Path.home() / ".cache" / "algo" / "run"
    cache_dir: Path = Path.home() / ".cache" / "algo"
    app_id: str = "algo"
    bar_interval: str = "1d"
    bar_idle_close_s: float = 2.0
    persist_batch_size: int = 500
    persist_batch_window_s: float = 0.5
    topic_partitions: int = 3
    # copies of each partition: 0 means 3 when KAFKA_BOOTSTRAP names 3 or more brokers, else 1
    topic_replication_factor: int = 0
    offset_reset: str = "earliest"
    # how often workers commit offsets: the event-time barriers (streams.bus.progress) wait on commits
    commit_interval_s: float = 0.2
    producer_linger_ms: float = 0.0  # how long a worker's producer gathers messages into one request
    # liveness (streams.bus.liveness): a group with lag that commits nothing for this long is stalled
    # (`algo supervise` restarts its worker), and lag at or above lag_alarm_messages for
    # lag_alarm_after_s raises the lag alarm on the bridge's /metrics
    stall_after_s: float = 120.0
    lag_alarm_messages: int = 10_000
    lag_alarm_after_s: float = 60.0
    api_token: str = ""  # empty: the bridge generates one per run; else at least MIN_API_TOKEN_LENGTH characters
    allowed_origins: tuple[str, ...] = ()
    model_dir: Path = PROJECT_ROOT / "models" if IN_CHECKOUT else Path("models")
    quant_model_version: str = ""  # pin the served version; empty = the newest registered one
    quant_model_poll_s: float = 5.0
    # the registry namespace whose models this process registers and serves (QUANT_MODEL_NAMESPACE,
    # default the app id): a test run's models never become current for the developer's workers
    model_namespace: str = "algo"
    risk: RiskSettings = field(default_factory=RiskSettings)
    broker: BrokerSettings = field(default_factory=BrokerSettings)
    consensus: ConsensusRules = field(default_factory=ConsensusRules)
    analyst: AnalystSettings = field(default_factory=AnalystSettings)
    memory: MemorySettings = field(default_factory=MemorySettings)
    # ALGO_PROFILE=secure: SASL/SCRAM over TLS to Kafka as `principal` (ALGO_PRINCIPAL; default the
    # worker's name for `algo worker NAME`, else admin), passwords and the CA from secrets_dir
    profile: str = "local"
    secrets_dir: Path | None = None  # ALGO_SECRETS_DIR; None: <run_dir>/secure
    principal: str = ""
    # set from the command line, never from the environment (`algo worker NAME`, see configure())
    worker: str = "all"

    def __post_init__(self) -> None:
        _check_api_token(self.api_token)  # however the Settings were built, a short token never serves

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = _Environment(os.environ if environ is None else environ)
        defaults = cls()
        app_id = env.checked("ALGO_APP_ID", defaults.app_id, _name_check)
        risk = env.domain(RiskSettings, "RISK_")
        weights = env.text("CONSENSUS_WEIGHTS", None)
        settings = cls(
            kafka_bootstrap=env.text("KAFKA_BOOTSTRAP", defaults.kafka_bootstrap),
            schema_registry_url=env.text("SCHEMA_REGISTRY_URL", defaults.schema_registry_url).rstrip("/"),
            database_url=env.text("DATABASE_URL", defaults.database_url),
            redis_url=env.text("REDIS_URL", defaults.redis_url),
            bridge_host=env.text("BRIDGE_HOST", defaults.bridge_host),
            bridge_port=env.number("BRIDGE_PORT", defaults.bridge_port, int, minimum=1, maximum=65535),
            run_dir=Path(env.text("ALGO_RUN_DIR", defaults.run_dir)),
            cache_dir=Path(env.text("ALGO_CACHE_DIR", defaults.cache_dir)),
            app_id=app_id,
            bar_interval=env.checked("BAR_INTERVAL", defaults.bar_interval, parse_interval),
            bar_idle_close_s=env.number("BAR_IDLE_CLOSE_S", defaults.bar_idle_close_s, minimum=0),
            persist_batch_size=env.number("PERSIST_BATCH_SIZE", defaults.persist_batch_size, int, minimum=1),
            persist_batch_window_s=env.number("PERSIST_BATCH_WINDOW_S", defaults.persist_batch_window_s, minimum=0),
            topic_partitions=env.number("TOPIC_PARTITIONS", defaults.topic_partitions, int, minimum=1),
            topic_replication_factor=env.number("TOPIC_REPLICATION_FACTOR", defaults.topic_replication_factor, int,
                                                minimum=1),
            offset_reset=env.choice("ALGO_OFFSET_RESET", defaults.offset_reset, ("earliest", "latest")),
            commit_interval_s=env.number("ALGO_COMMIT_INTERVAL_S", defaults.commit_interval_s, minimum=0.01),
            producer_linger_ms=env.number("ALGO_PRODUCER_LINGER_MS", defaults.producer_linger_ms, minimum=0),
            stall_after_s=env.number("ALGO_STALL_AFTER_S", defaults.stall_after_s, minimum=1),
            lag_alarm_messages=env.number("ALGO_LAG_ALARM", defaults.lag_alarm_messages, int, minimum=1),
            lag_alarm_after_s=env.number("ALGO_LAG_ALARM_AFTER_S", defaults.lag_alarm_after_s, minimum=0),
            api_token=env.text("ALGO_API_TOKEN", defaults.api_token),  # checked by __post_init__, never echoed
            allowed_origins=tuple(o.strip() for o in env.text("ALGO_ALLOWED_ORIGINS", "").split(",") if o.strip()),
            model_dir=Path(env.text("ALGO_MODEL_DIR", defaults.model_dir)),
            quant_model_version=env.text("QUANT_MODEL_VERSION", defaults.quant_model_version).strip(),
            quant_model_poll_s=env.number("QUANT_MODEL_POLL_S", defaults.quant_model_poll_s, minimum=0.1),
            model_namespace=env.checked("QUANT_MODEL_NAMESPACE", app_id, _name_check),
            risk=risk,
            broker=env.domain(BrokerSettings, "BROKER_", account=risk.account, initial_cash=risk.initial_cash),
            consensus=env.domain(
                ConsensusRules, "CONSENSUS_", ("window_s", "min_score", "min_agreement", "max_position", "agent_timeout_s"),
                bar_agents=tuple(a.strip() for a in env.text("CONSENSUS_BAR_AGENTS", "technical,quant").split(",")
                                 if a.strip()),
                **({} if weights is None else {"weights": parse_weights(weights)})),
            analyst=env.domain(AnalystSettings, "ANALYST_", llm=env.checked("ANALYST_LLM", "", _check_llm)),
            memory=env.domain(MemorySettings, "MEMORY_"),
            profile=env.choice("ALGO_PROFILE", defaults.profile, PROFILES),
            secrets_dir=Path(env.text("ALGO_SECRETS_DIR", "")) if env.text("ALGO_SECRETS_DIR", "") else None,
            principal=env.checked("ALGO_PRINCIPAL", "", _principal_check),
        )
        env.unknown()
        return settings

    # endpoints split for the local stack
    @property
    def kafka_host_port(self) -> tuple[str, int]:
        return self.kafka_addresses[0]

    @property
    def kafka_addresses(self) -> tuple[tuple[str, int], ...]:
        """Each (host, port) KAFKA_BOOTSTRAP names, in order (the local stack runs one node per address)."""
        return tuple(_host_port(b.strip().removeprefix("kafka://"), 9092, "KAFKA_BOOTSTRAP")
                     for b in self.kafka_bootstrap.split(",") if b.strip())

    @property
    def replication_factor(self) -> int:
        """The replication factor of the topics this project creates (TOPIC_REPLICATION_FACTOR, else 3
        on a cluster of 3 or more brokers, else 1)."""
        if self.topic_replication_factor:
            return self.topic_replication_factor
        return 3 if len(self.kafka_addresses) >= 3 else 1

    @property
    def registry_host_port(self) -> tuple[str, int]:
        return _host_port(urlsplit(self.schema_registry_url).netloc, 8081, "SCHEMA_REGISTRY_URL")

    @property
    def postgres_host_port(self) -> tuple[str, int]:
        netloc = urlsplit(self.database_url).netloc.rpartition("@")[2]
        return _host_port(netloc, 5432, "DATABASE_URL")

    @property
    def postgres_user_password_db(self) -> tuple[str, str, str]:
        parts = urlsplit(self.database_url)
        return parts.username or "algo", parts.password or "", parts.path.lstrip("/") or "algo"

    @property
    def redis_host_port(self) -> tuple[str, int]:
        return _host_port(urlsplit(self.redis_url).netloc.rpartition("@")[2], 6379, "REDIS_URL")

    @property
    def bar_interval_seconds(self) -> int:
        return parse_interval(self.bar_interval)

    @property
    def faust_broker(self) -> str:
        return ";".join("kafka://" + b.strip().removeprefix("kafka://") for b in self.kafka_bootstrap.split(","))

    @property
    def secrets_folder(self) -> Path:
        return Path(self.secrets_dir) if self.secrets_dir else Path(self.run_dir).absolute() / "secure"

    @property
    def kafka_principal(self) -> str:
        if self.principal:
            return self.principal
        return self.worker if self.worker in PRINCIPALS and self.worker != "all" else "admin"

    def aiokafka_config(self) -> dict[str, object]:
        """aiokafka's keyword arguments for the same connection as kafka_config() (the bridge's hub)."""
        config: dict[str, object] = {"bootstrap_servers": self.kafka_config_plain_bootstrap()}
        if self.profile == "secure":
            import ssl

            config.update(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                          sasl_plain_username=self.kafka_principal,
                          sasl_plain_password=self.password(self.kafka_principal),
                          ssl_context=ssl.create_default_context(cafile=str(self.secrets_folder / "ca.pem")))
        return config

    def kafka_config_plain_bootstrap(self) -> str:
        return ",".join(b.strip().removeprefix("kafka://") for b in self.kafka_bootstrap.split(","))

    @property
    def redis_client_url(self) -> str:
        """REDIS_URL, as the Kafka principal's Redis ACL user in the secure profile."""
        if self.profile != "secure":
            return self.redis_url
        from urllib.parse import quote

        parts = urlsplit(self.redis_url)
        netloc = parts.netloc.rpartition("@")[2]
        user = quote(self.kafka_principal, safe="")
        return parts._replace(netloc=f"{user}:{quote(self.password(self.kafka_principal), safe='')}@{netloc}").geturl()

    def password(self, principal: str) -> str:
        """A principal's password in the secure profile (written by `algo stack up --secure`)."""
        import json

        path = self.secrets_folder / CREDENTIALS_FILE
        try:
            return json.loads(path.read_text())[principal]
        except FileNotFoundError:
            raise ConfigError(f"ALGO_PROFILE=secure but {path} does not exist: `algo stack up --secure` makes it, "
                              "or set ALGO_SECRETS_DIR") from None
        except (KeyError, ValueError):
            raise ConfigError(f"{path} has no password for principal {principal!r}") from None

    def kafka_config(self, overrides: Mapping[str, object] | None = None) -> dict[str, object]:
        """librdkafka's dotted keys for confluent-kafka producers, consumers and admin clients."""
        config: dict[str, object] = {
            "bootstrap.servers": self.kafka_config_plain_bootstrap(),
            "client.id": self.app_id,
        }
        if self.profile == "secure":
            config.update({"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                           "sasl.username": self.kafka_principal, "sasl.password": self.password(self.kafka_principal),
                           "ssl.ca.location": str(self.secrets_folder / "ca.pem")})
        config.update(overrides or {})
        return config

    def registry_config(self) -> dict[str, str]:
        return {"url": self.schema_registry_url}


# what the command line decided for this process, laid over the environment (see configure)
_command_line: dict[str, object] = {}


def configure(*, worker: str) -> None:
    """Sets what the command line decides for this process: `algo worker NAME` names its worker
    (the Faust app and its consumer group are `<ALGO_APP_ID>-<worker>`). Call it before streams.app
    is imported: the app is named from get_settings() when it is."""
    if not _NAME.fullmatch(worker):
        raise ConfigError(f"worker name {worker!r}: use letters, digits, '.', '_' and '-'")
    _command_line["worker"] = worker


def get_settings() -> Settings:
    """This process's settings: the environment (Settings.from_env) plus what configure() set."""
    return dataclasses.replace(Settings.from_env(), **_command_line)
