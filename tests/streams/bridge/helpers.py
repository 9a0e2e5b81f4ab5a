"""A real bridge for integration tests: in a thread of its own (own event loop) on a free port, or as
`algo bridge` in a subprocess."""
from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique_symbol(prefix: str = "BR") -> str:
    return prefix + uuid.uuid4().hex[:6].upper()


class BridgeThread:
    """create_app(settings, **kwargs) served on 127.0.0.1:<free port> from a background thread."""

    def __init__(self, settings: Settings, token: str = "test-token-0123456789", **kwargs) -> None:
        from streams.bridge.server import create_app

        self.settings = dataclasses.replace(settings, api_token=token)
        self.token = token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.auth = {"Authorization": f"Bearer {token}"}
        self._kwargs = kwargs
        self._create_app = create_app
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bridge-under-test", daemon=True)

    def _run(self) -> None:
        from aiohttp import web

        asyncio.set_event_loop(self._loop)
        self.app = self._create_app(self.settings, **self._kwargs)
        self._runner = web.AppRunner(self.app, access_log=None)
        try:
            self._loop.run_until_complete(self._runner.setup())
            self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        except BaseException as error:  # noqa: BLE001 - reported to the test thread
            self._error = error
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def __enter__(self) -> "BridgeThread":
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        wait_ready(self.url)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    def call(self, coroutine, timeout: float = 30):
        """Runs a coroutine on the bridge's loop (to reach the hub from a test)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)


def wait_ready(url: str, timeout: float = 60) -> dict:
    """Polls /readyz until the bridge reaches Kafka, the registry and Postgres."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            response = requests.get(f"{url}/readyz", timeout=10)
            last = response.json()
            if response.status_code == 200:
                return last
        except requests.RequestException as error:
            last = str(error)
        time.sleep(0.3)
    pytest.fail(f"bridge at {url} not ready after {timeout} s: {last}")


class BridgeProcess:
    """`algo bridge` as users run it, in a subprocess with its own token and port."""

    def __init__(self, log_path: Path, token: str = "test-token-0123456789", **env: str) -> None:
        self.token = token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        environment = {**os.environ, "ALGO_API_TOKEN": token, "BRIDGE_PORT": str(self.port), **env}
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "ops.cli", "bridge"], cwd=ROOT,
                                            env=environment, stdout=log, stderr=subprocess.STDOUT)

    def __enter__(self) -> "BridgeProcess":
        try:
            wait_ready(self.url)
        except BaseException:
            self.stop()
            print(self.log())
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
