"""`algo supervise`: run workers and keep them alive. A worker that exits is started again; a worker
whose consumer group stalls (lag, and no commit for ALGO_STALL_AFTER_S: streams.bus.liveness) gets
SIGKILL and is started again, since a Faust consumer can stop fetching while its process looks
healthy (faust-streaming issue #175). Nothing is lost by the kill: the new worker resumes from the
group's committed offsets, and the derived ids make what it does again the same messages.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from streams.bus.liveness import GroupOffsetsReader, LivenessTracker
from streams.errors import ServiceUnavailable
from streams.settings import Settings

RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)  # after the n-th restart within ten minutes


@dataclass
class Restart:
    at: float  # time.time()
    worker: str
    reason: str


@dataclass
class Supervised:
    name: str
    log: Path
    process: subprocess.Popen | None = None
    runs: int = 0
    recent: list[float] = field(default_factory=list)  # monotonic times of its restarts


class SupervisorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.restarts = Counter("algo_worker_restarts", "Workers started again by the supervisor",
                                ["worker", "reason"], registry=self.registry)
        self.lag = Gauge("algo_consumer_lag", "Messages the worker's group has not committed", ["worker"],
                         registry=self.registry)
        self.stalled = Gauge("algo_consumer_stalled", "1 while the group has lag and commits nothing", ["worker"],
                             registry=self.registry)
        self.lag_alarm = Gauge("algo_consumer_lag_alarm", "1 while the lag stays at or above ALGO_LAG_ALARM",
                               ["worker"], registry=self.registry)


class Supervisor:
    """Starts `algo worker NAME` for each name (logs under log_dir, one file per run), checks them
    every `check_s` from a thread, restarts the dead and the stalled. stop() stops them all."""

    def __init__(self, settings: Settings, names: list[str], log_dir: Path, env: dict[str, str] | None = None,
                 check_s: float = 5.0, progress: Callable[[str], None] = print) -> None:
        self.settings, self.env, self.check_s, self.say = settings, env or {}, check_s, progress
        self.log_dir = log_dir
        self.workers = {name: Supervised(name, log_dir / f"{name}.log") for name in names}
        self.tracker = LivenessTracker(settings.stall_after_s, settings.lag_alarm_messages, settings.lag_alarm_after_s)
        self.metrics = SupervisorMetrics()
        self.restarts: list[Restart] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def group(self, name: str) -> str:
        return f"{self.env.get('ALGO_APP_ID', self.settings.app_id)}-{name}"

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for worker in self.workers.values():
            self._launch(worker)
        self._thread.start()

    def _launch(self, worker: Supervised) -> None:
        worker.runs += 1
        with open(worker.log, "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} algo supervise: run {worker.runs}\n".encode())
            log.flush()
            worker.process = subprocess.Popen([sys.executable, "-m", "ops.cli", "worker", worker.name], stdout=log,
                                              stderr=subprocess.STDOUT, env={**os.environ, **self.env},
                                              start_new_session=True)

    def restart(self, name: str, reason: str) -> None:
        worker = self.workers[name]
        with self._lock:
            if self._stopping.is_set():
                return
            process = worker.process
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)  # a stalled consumer may not stop when asked
                process.wait(10)
            now = time.monotonic()
            worker.recent = [t for t in worker.recent if now - t < 600] + [now]
            pause = RESTART_BACKOFF_S[min(len(worker.recent), len(RESTART_BACKOFF_S)) - 1]
            self.restarts.append(Restart(time.time(), name, reason))
            self.metrics.restarts.labels(name, reason.split(":")[0]).inc()
            self.say(f"supervisor: {name} {reason}; starting it again in {pause:.0f} s (run {worker.runs + 1})")
        if self._stopping.wait(pause):
            return
        with self._lock:
            if not self._stopping.is_set():
                self._launch(worker)
                self.tracker.forget(self.group(name))  # its clock starts again with the new process

    def pids(self) -> dict[str, int]:
        return {name: w.process.pid for name, w in self.workers.items() if w.process and w.process.poll() is None}

    def _watch(self) -> None:
        reader = GroupOffsetsReader(self.settings)
        while not self._stopping.wait(self.check_s):
            for name, worker in self.workers.items():
                code = worker.process.poll() if worker.process else None
                if code is not None:
                    self.restart(name, f"exited: exit code {code}")
            try:
                offsets = reader.read([self.group(name) for name in self.workers])
            except ServiceUnavailable as error:  # Kafka down: no verdict (the workers wait for it too)
                self.say(f"supervisor: cannot read the groups' offsets ({error}); checking again")
                continue
            verdicts = self.tracker.observe(time.monotonic(), offsets)
            for name in self.workers:
                verdict = verdicts[self.group(name)]
                self.metrics.lag.labels(name).set(verdict.lag)
                self.metrics.stalled.labels(name).set(int(verdict.stalled))
                self.metrics.lag_alarm.labels(name).set(int(verdict.lag_alarm))
                if verdict.stalled:
                    self.restart(name, f"stalled: no commit for {verdict.idle_s:.0f} s with a lag of {verdict.lag}")

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        with self._lock:
            running = [w.process for w in self.workers.values() if w.process and w.process.poll() is None]
            for process in running:
                process.terminate()
            deadline = time.monotonic() + timeout
            for process in running:
                try:
                    process.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)
        if self._thread.is_alive():
            self._thread.join(self.check_s + 30)
