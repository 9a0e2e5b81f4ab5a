"""`algo stack status`: the table or JSON, and an exit code scripts can use."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ops.stack import services as stack
from ops.stack.cli import stack as stack_group
from streams.settings import Settings


def _point_env_at(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "SCHEMA_REGISTRY_URL": settings.schema_registry_url,
                       "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
                       "ALGO_RUN_DIR": str(settings.run_dir), "ALGO_CACHE_DIR": str(settings.cache_dir)}.items():
        monkeypatch.setenv(key, value)


@pytest.mark.parametrize("args", [["status"], ["status", "--json"]])
def test_status_exits_1_when_nothing_listens(settings: Settings, monkeypatch: pytest.MonkeyPatch, args) -> None:
    _point_env_at(settings, monkeypatch)
    result = CliRunner().invoke(stack_group, args)
    assert result.exit_code == 1, result.output
    if "--json" in args:
        report = json.loads(result.output)
        assert report["healthy"] is False
        assert [part["name"] for part in report["parts"]] == ["postgres", "redis", "kafka", "registry"]
        assert report["parts"][2]["endpoint"] == settings.kafka_bootstrap
    else:
        assert "not all healthy" in result.output and "stopped" in result.output


def _part(name: str, healthy: bool) -> stack.ServiceStatus:
    return stack.ServiceStatus(name=name, endpoint="127.0.0.1:1", pid=1 if healthy else None, running=healthy,
                               healthy=healthy, detail="ok" if healthy else "stopped", log=Path("/dev/null"))


@pytest.mark.parametrize("sick, code", [((), 0), (("registry",), 1), (("postgres", "kafka"), 1)])
def test_status_exit_code_follows_health(monkeypatch: pytest.MonkeyPatch, sick: tuple, code: int) -> None:
    names = ("postgres", "redis", "kafka", "registry")
    monkeypatch.setattr(stack, "status", lambda settings: [_part(name, name not in sick) for name in names])
    result = CliRunner().invoke(stack_group, ["status", "--json"])
    assert result.exit_code == code, result.output
    assert json.loads(result.output)["healthy"] is (code == 0)
