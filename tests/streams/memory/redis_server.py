"""A private redis-server for tests that need their own configuration (a tiny maxmemory, an outage):
the shared stack's Redis is never reconfigured, flushed or stopped."""
from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from typing import Iterator

import redis


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    def __init__(self, maxmemory: str | None = None) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.maxmemory = maxmemory
        self.process: subprocess.Popen | None = None

    def start(self) -> "PrivateRedis":
        command = [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                   "--save", "", "--appendonly", "no"]
        if self.maxmemory:
            command += ["--maxmemory", self.maxmemory, "--maxmemory-policy", "noeviction"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = self.client()
        try:
            for _ in range(200):
                try:
                    client.ping()
                    return self
                except redis.ConnectionError:
                    time.sleep(0.025)
            raise RuntimeError(f"redis-server on port {self.port} did not answer")
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)


@contextlib.contextmanager
def private_redis(maxmemory: str | None = None) -> Iterator[PrivateRedis]:
    server = PrivateRedis(maxmemory).start()
    try:
        yield server
    finally:
        server.stop()
