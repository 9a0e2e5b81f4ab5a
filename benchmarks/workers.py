"""Starting an `algo worker NAME` process for a benchmark, in a consumer group of its own."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_worker(name: str, log: Path, env: dict[str, str], timeout: float = 120) -> subprocess.Popen:
    """The worker, once it has joined its group and is ready (its output goes to `log`)."""
    handle = open(log, "wb")
    process = subprocess.Popen([sys.executable, "-m", "ops.cli", "worker", name], cwd=ROOT,
                               env={**os.environ, **env}, stdout=handle, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while b"[^Worker]: Ready" not in log.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"worker {name} did not start; see {log}")
        time.sleep(0.25)
    return process
