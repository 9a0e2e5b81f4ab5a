"""The API token never reaches a log: the access log strips `token=` values (request line and
Referer), and `algo bridge` does not print a token it was given."""
from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import time

import requests
from aiohttp.test_utils import TestClient, TestServer

from streams.bridge.server import access_log_options, create_app, scrub_token
from streams.settings import Settings
from tests.streams.bridge.fakes import FakePublisher, FakeStore
from tests.streams.bridge.helpers import ROOT, free_port

SECRET = "never-in-a-log-0123456789abcdef"


def test_scrub_token_keeps_everything_else():
    assert scrub_token(f"GET /v1/stream?token={SECRET}&x=1 HTTP/1.1") == "GET /v1/stream?token=***&x=1 HTTP/1.1"
    assert scrub_token(f"http://h:8000/?symbols=AAPL,IBM&TOKEN={SECRET}") == "http://h:8000/?symbols=AAPL,IBM&TOKEN=***"
    assert scrub_token("/?mytoken=kept") == "/?mytoken=kept"


async def test_the_access_log_of_requests_with_a_token_does_not_show_it(caplog):
    settings = dataclasses.replace(Settings(), api_token=SECRET)
    app = create_app(settings, kafka=False, publisher=FakePublisher(), store=FakeStore(), heartbeat_s=0)
    caplog.set_level(logging.INFO, logger="algo.bridge.access")
    server = TestServer(app)
    await server.start_server(**access_log_options(True))  # as run_bridge serves it with --access-log
    async with TestClient(server) as client:
        async with client.ws_connect("/v1/stream", params={"token": SECRET}) as ws:
            assert (await ws.receive_json())["type"] == "hello"
        page = await client.get("/", params={"token": SECRET, "symbols": "AAPL"})
        assert page.status == 200 and page.headers["Referrer-Policy"] == "no-referrer"
        script = await client.get("/static/dashboard.js", headers={"Referer": f"{client.make_url('/')}?token={SECRET}"})
        assert script.status == 200
        assert (await client.get("/v1/pnl", params={"token": SECRET})).status == 401  # query token: websocket only
    lines = [r.getMessage() for r in caplog.records if r.name == "algo.bridge.access"]
    assert len(lines) == 4, lines
    assert all("token=***" in line for line in lines), lines
    assert any("symbols=AAPL" in line for line in lines)
    assert SECRET not in caplog.text


def test_algo_bridge_prints_no_configured_token(tmp_path):
    port = free_port()
    log = tmp_path / "bridge.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "ops.cli", "bridge", "--port", str(port), "--access-log"],
                                   cwd=ROOT, env={**os.environ, "ALGO_API_TOKEN": SECRET}, stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            try:
                if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        assert requests.get(f"{base}/", params={"token": SECRET}, timeout=5).status_code == 200
        assert requests.get(f"{base}/v1/stream", params={"token": SECRET}, timeout=5).status_code == 426
        assert requests.get(f"{base}/v1/decisions", params={"token": SECRET}, timeout=5).status_code == 401
    finally:
        process.terminate()
        process.wait(20)
    text = log.read_text()
    assert "GET /?token=*** HTTP/1.1" in text and "GET /v1/stream?token=*** HTTP/1.1" in text, text
    assert f"dashboard http://127.0.0.1:{port}/?token=$ALGO_API_TOKEN" in text
    assert SECRET not in text
