"""Integration: `algo supervise`'s Supervisor (ops/supervisor.py) on the real stack. A bar worker is
frozen with SIGSTOP while ticks keep coming (its process lives, its consumer does nothing: what
faust-streaming issue #175 looks like from outside); the supervisor sees lag with no commit, kills it
and starts it again, and the new worker makes every bar. Then a worker that dies is started again.
"""
from __future__ import annotations

import os
import signal
import time
import uuid
from dataclasses import replace
from datetime import timedelta

import pytest

from ops.supervisor import Supervisor
from streams.bus.codecs import CodecRegistry
from streams.bus.liveness import GroupOffsetsReader
from tests import fixtures
from tests.kafka_tools import commit_inputs_at_ends, ends, produce_many, read_from, wait_for

pytestmark = pytest.mark.integration

STALL_AFTER_S = 12


def ready_runs(log) -> int:
    return log.read_bytes().count(b"[^Worker]: Ready")


@pytest.mark.timeout(400)
def test_a_stalled_worker_is_restarted_and_a_dead_one_started_again(provisioned, tmp_path):
    app_id, symbol = f"test-sup-{uuid.uuid4().hex[:8]}", f"SV{uuid.uuid4().hex[:6].upper()}"
    settings = replace(provisioned, app_id=app_id, stall_after_s=STALL_AFTER_S, lag_alarm_messages=1,
                       lag_alarm_after_s=0.0)
    codec = CodecRegistry(settings.schema_registry_url).for_topic("market.ticks")
    day0 = fixtures.T0.replace(hour=0, minute=0)

    def publish(days: range) -> None:
        produce_many(settings, "market.ticks", [(symbol.encode(), codec.encode(fixtures.tick(
            symbol=symbol, ts=day0 + timedelta(days=d, hours=1), price=100.0 + d, size=1.0, seq=d))) for d in days])

    bars_start = ends(settings, "market.bars")
    commit_inputs_at_ends(settings, app_id, ["bars"])
    env = {"ALGO_APP_ID": app_id, "ALGO_STALL_AFTER_S": str(STALL_AFTER_S), "BAR_IDLE_CLOSE_S": "1",
           "BROKER_SESSION_TIMEOUT": "10", "BROKER_HEARTBEAT_INTERVAL": "1"}
    supervisor = Supervisor(settings, ["bars"], tmp_path, env=env, check_s=1.0)
    log = tmp_path / "bars.log"
    try:
        supervisor.start()
        wait_for(lambda: ready_runs(log) == 1, timeout=120, what="the bar worker ready")
        publish(range(0, 5))
        wait_for(lambda: GroupOffsetsReader(settings).read([f"{app_id}-bars"])[f"{app_id}-bars"].lag == 0,
                 timeout=60, what="the first ticks committed")
        frozen = supervisor.pids()["bars"]
        os.kill(frozen, signal.SIGSTOP)  # alive, holding its partitions, consuming nothing
        frozen_at = time.monotonic()
        publish(range(5, 10))
        wait_for(lambda: supervisor.restarts, timeout=STALL_AFTER_S + 60, what="a restart of the frozen worker")
        [restart] = supervisor.restarts
        assert restart.worker == "bars" and restart.reason.startswith("stalled: no commit for"), restart
        assert time.monotonic() - frozen_at >= STALL_AFTER_S
        assert supervisor.metrics.registry.get_sample_value("algo_worker_restarts_total",
                                                            {"worker": "bars", "reason": "stalled"}) == 1
        wait_for(lambda: ready_runs(log) == 2, timeout=120, what="the restarted bar worker ready")
        assert supervisor.pids()["bars"] != frozen

        # the new worker made the bars of the ticks that came while the old one was frozen
        def bars_made() -> set:
            return {bar["ts"] for _, bar in read_from(settings, bars_start) if bar["symbol"] == symbol}
        wait_for(lambda: len(bars_made()) == 10, timeout=90, what="all ten bars")

        os.kill(supervisor.pids()["bars"], signal.SIGKILL)
        wait_for(lambda: len(supervisor.restarts) == 2, timeout=30, what="a restart of the dead worker")
        assert supervisor.restarts[1].reason == "exited: exit code -9"
        wait_for(lambda: ready_runs(log) == 3, timeout=120, what="the bar worker ready a third time")
    finally:
        supervisor.stop()
    assert b"Crashed" not in log.read_bytes()
