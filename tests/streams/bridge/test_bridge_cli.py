"""`algo bridge` as a command: help, a generated token when ALGO_API_TOKEN is unset, a busy port."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import requests
from click.testing import CliRunner

from ops.cli import cli
from tests.streams.bridge.helpers import ROOT, free_port


def test_help_names_the_options():
    result = CliRunner().invoke(cli, ["bridge", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--max-body-bytes", "--queue-size", "--ring-size", "--access-log",
                   "ALGO_API_TOKEN"):
        assert option in result.output


def test_without_a_token_one_is_generated_and_printed(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "ALGO_API_TOKEN"}
    log = tmp_path / "bridge.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "ops.cli", "bridge", "--port", str(port)], cwd=ROOT,
                                   env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "dashboard http" not in log.read_text() or not _answers(port):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        match = re.search(rf"dashboard http://127\.0\.0\.1:{port}/\?token=(\S+)", log.read_text())
        assert match, log.read_text()
        token = match.group(1)
        assert "generated a token" in log.read_text()
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        url = f"http://127.0.0.1:{port}/v1/stream"
        assert requests.get(url, timeout=5).status_code == 401
        assert requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code == 426
    finally:
        process.terminate()
        process.wait(20)


def test_a_busy_port_is_a_one_line_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "ops.cli", "bridge", "--port", str(port)], cwd=ROOT,
                                capture_output=True, text=True, timeout=60,
                                env={**os.environ, "ALGO_API_TOKEN": "busy-port-token-0123456789"})
    assert result.returncode == 1
    assert f"error: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def _answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False
