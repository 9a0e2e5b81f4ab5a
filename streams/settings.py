"""The one place that reads the environment.

Every endpoint has a default pointing at the local stack (`algo stack up`), so the same code runs
against docker-compose or a remote cluster by changing environment variables only.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

from streams.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

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


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str = "127.0.0.1:9092"
    schema_registry_url: str = "http://127.0.0.1:8081/apis/ccompat/v7"
    database_url: str = "postgresql://algo:algo@127.0.0.1:5432/algo"
    redis_url: str = "redis://127.0.0.1:6379/0"
    bridge_host: str = "127.0.0.1"
    bridge_port: int = 8000
    run_dir: Path = PROJECT_ROOT / ".run"
    cache_dir: Path = Path.home() / ".cache" / "algo"
    app_id: str = "algo"
    bar_interval: str = "1d"
    bar_idle_close_s: float = 2.0
    persist_batch_size: int = 500
    persist_batch_window_s: float = 0.5
    topic_partitions: int = 3
    offset_reset: str = "earliest"
    api_token: str = ""
    allowed_origins: tuple[str, ...] = ()
    model_dir: Path = PROJECT_ROOT / "models"
    quant_model_version: str = ""  # pin the served version; empty = the newest registered one
    quant_model_poll_s: float = 5.0
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        defaults = cls()

        def get(name: str, default):
            return env.get(name, default)

        def number(name: str, default, kind):
            raw = env.get(name)
            if raw is None:
                return default
            try:
                return kind(raw)
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not a {kind.__name__}") from None

        settings = cls(
            kafka_bootstrap=get("KAFKA_BOOTSTRAP", defaults.kafka_bootstrap),
            schema_registry_url=get("SCHEMA_REGISTRY_URL", defaults.schema_registry_url).rstrip("/"),
            database_url=get("DATABASE_URL", defaults.database_url),
            redis_url=get("REDIS_URL", defaults.redis_url),
            bridge_host=get("BRIDGE_HOST", defaults.bridge_host),
            bridge_port=number("BRIDGE_PORT", defaults.bridge_port, int),
            run_dir=Path(get("ALGO_RUN_DIR", defaults.run_dir)),
            cache_dir=Path(get("ALGO_CACHE_DIR", defaults.cache_dir)),
            app_id=get("ALGO_APP_ID", defaults.app_id),
            bar_interval=get("BAR_INTERVAL", defaults.bar_interval),
            bar_idle_close_s=number("BAR_IDLE_CLOSE_S", defaults.bar_idle_close_s, float),
            persist_batch_size=number("PERSIST_BATCH_SIZE", defaults.persist_batch_size, int),
            persist_batch_window_s=number("PERSIST_BATCH_WINDOW_S", defaults.persist_batch_window_s, float),
            topic_partitions=number("TOPIC_PARTITIONS", defaults.topic_partitions, int),
            offset_reset=get("ALGO_OFFSET_RESET", defaults.offset_reset),
            api_token=get("ALGO_API_TOKEN", defaults.api_token),
            allowed_origins=tuple(o.strip() for o in get("ALGO_ALLOWED_ORIGINS", "").split(",") if o.strip()),
            model_dir=Path(get("ALGO_MODEL_DIR", defaults.model_dir)),
            quant_model_version=get("QUANT_MODEL_VERSION", defaults.quant_model_version).strip(),
            quant_model_poll_s=number("QUANT_MODEL_POLL_S", defaults.quant_model_poll_s, float),
        )
        if settings.offset_reset not in ("earliest", "latest"):
            raise ConfigError(f"ALGO_OFFSET_RESET={settings.offset_reset!r}: use earliest or latest")
        parse_interval(settings.bar_interval)
        return settings

    # endpoints split for the local stack
    @property
    def kafka_host_port(self) -> tuple[str, int]:
        first = self.kafka_bootstrap.split(",")[0].strip()
        return _host_port(first.removeprefix("kafka://"), 9092, "KAFKA_BOOTSTRAP")

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

    def kafka_config(self, overrides: Mapping[str, object] | None = None) -> dict[str, object]:
        """librdkafka's dotted keys for confluent-kafka producers, consumers and admin clients."""
        config: dict[str, object] = {
            "bootstrap.servers": ",".join(b.strip().removeprefix("kafka://") for b in self.kafka_bootstrap.split(",")),
            "client.id": self.app_id,
        }
        config.update(overrides or {})
        return config

    def registry_config(self) -> dict[str, str]:
        return {"url": self.schema_registry_url}


def get_settings() -> Settings:
    return Settings.from_env()
