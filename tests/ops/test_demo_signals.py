"""Ctrl-C (SIGINT) and SIGTERM stop `algo demo` and everything it started within seconds, and the
workers leave their consumer groups (else the next demo cannot reset them: "not empty")."""
from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil
import psycopg
import pytest

from ops.demo import DEMO_WORKERS

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo_env(provisioned, tmp_path_factory):
    """The demo's environment: its own app id (consumer groups) and bridge port, and a quick model
    registered in the test run's namespace, so the demo does not train its own for half a minute."""
    from streams.market.datasets import load_bars
    from streams.quant.train import train_and_register

    train_and_register(provisioned, [load_bars("sp500", "SP500")], "test:demo-signals", timesteps=256, seed=0,
                       out_dir=tmp_path_factory.mktemp("model"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return {**os.environ, "ALGO_APP_ID": f"{provisioned.app_id}-demo", "BRIDGE_PORT": str(port)}


def lines_of(process: subprocess.Popen) -> queue.Queue:
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line)
    threading.Thread(target=read, daemon=True).start()
    return lines


def wait_for_line(lines: queue.Queue, process: subprocess.Popen, words: str, timeout: float = 300) -> None:
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=1))
        except queue.Empty:
            assert process.poll() is None, f"the demo exited ({process.returncode}):\n{''.join(seen)}"
            continue
        if words in seen[-1]:
            return
    pytest.fail(f"no {words!r} from the demo in {timeout:.0f} s:\n{''.join(seen)}")


def group_states(env: dict) -> dict[str, tuple[str, int]]:
    from confluent_kafka.admin import AdminClient

    groups = [f"{env['ALGO_APP_ID']}-{name}" for name in DEMO_WORKERS]
    admin = AdminClient({"bootstrap.servers": env.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"), "log_level": 3})
    described = admin.describe_consumer_groups(groups, request_timeout=10)
    return {group: (future.result(timeout=15).state.name, len(future.result(timeout=15).members))
            for group, future in described.items()}


@pytest.mark.parametrize("signum, when, inherited", [
    # a shell starts a background job with SIGINT ignored: the demo must stop on it all the same
    (signal.SIGINT, "demo: replaying", signal.SIG_IGN),
    (signal.SIGTERM, "demo: dashboard:", signal.SIG_DFL),   # while it waits for its workers
], ids=["SIGINT-during-the-replay", "SIGTERM-while-workers-start"])
def test_a_signal_stops_the_demo_and_everything_it_started(demo_env, provisioned, signum, when, inherited):
    since = datetime.now(timezone.utc)
    # NASDAQ: a symbol no other test reads from market_data (the risk agent's tests expect no AAPL there)
    demo = subprocess.Popen(
        [sys.executable, "-m", "ops.cli", "demo", "--dataset", "nasdaq"], cwd=ROOT,
        env=demo_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, inherited))
    started: list[psutil.Process] = []
    try:
        lines = lines_of(demo)
        wait_for_line(lines, demo, when)
        started = psutil.Process(demo.pid).children(recursive=True)
        assert len(started) == len(DEMO_WORKERS) + 1  # the workers and the bridge
        demo.send_signal(signum)
        sent = time.monotonic()
        assert demo.wait(timeout=15) == 128 + signum
        _, alive = psutil.wait_procs(started, timeout=max(0.1, 15 - (time.monotonic() - sent)))
        assert alive == [], f"still running 15 s after {signum.name}: {[p.cmdline() for p in alive]}"
        rest = []
        while not lines.empty():
            rest.append(lines.get())
        assert f"demo: stopped by {signum.name}" in "".join(rest)
        states = group_states(demo_env)
        assert all(state in ("EMPTY", "DEAD") and members == 0 for state, members in states.values()), states
    finally:
        for process in [*started, psutil.Process(demo.pid) if demo.poll() is None else None]:
            if process is not None and process.is_running():
                process.kill()
        with psycopg.connect(provisioned.database_url, autocommit=True) as conn:  # the bars this demo persisted
            conn.execute("DELETE FROM market_data WHERE symbol = 'NASDAQ' AND updated_at >= %s", (since,))
