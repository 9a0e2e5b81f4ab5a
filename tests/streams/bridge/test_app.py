"""The HTTP layer with fake dependencies: auth, origins, validation, limits, errors, metrics, OpenAPI."""
from __future__ import annotations

import contextlib
import dataclasses

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from streams.bridge.server import create_app, origin_allowed, token_matches
from streams.bridge.api import BRIDGE, STATIC_DIR, openapi_document
from streams.bridge.store import StoreUnavailable
from streams.settings import Settings
from tests.streams.bridge.fakes import FakePublisher, FakeStore

TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TICK = {"symbol": "AAPL", "ts": "2013-03-01T14:30:00Z", "price": 438.0, "size": 100}


@contextlib.asynccontextmanager
async def bridge_client(token: str = TOKEN, origins: tuple[str, ...] = (), publisher=None, store=None, **kwargs):
    settings = dataclasses.replace(Settings(), api_token=token, allowed_origins=origins)
    app = create_app(settings, kafka=False, publisher=publisher or FakePublisher(), store=store or FakeStore(),
                     heartbeat_s=0, **kwargs)
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_health_is_open_and_v1_needs_the_token():
    async with bridge_client() as client:
        assert (await client.get("/healthz")).status == 200
        for path in ("/v1/decisions", "/v1/positions", "/v1/pnl", "/v1/agents", "/v1/bars", "/v1/fills"):
            response = await client.get(path)
            assert response.status == 401, path
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert "Authorization: Bearer" in (await response.json())["problem"]
            assert (await client.get(path, headers={"Authorization": "Bearer wrong"})).status == 401
            assert (await client.get(path, headers=AUTH)).status == 200
        assert (await client.post("/v1/ticks", json=TICK)).status == 401
        assert (await client.get("/v1/decisions", params={"token": TOKEN})).status == 401  # query token: websocket only


async def test_without_a_configured_token_v1_refuses_with_503():
    async with bridge_client(token="") as client:
        response = await client.post("/v1/ticks", json=TICK, headers={"Authorization": "Bearer "})
        assert response.status == 503
        assert (await response.json())["error"] == "no API token configured"
        assert (await client.get("/healthz")).status == 200


async def test_publish_ticks_and_news():
    publisher = FakePublisher()
    async with bridge_client(publisher=publisher) as client:
        response = await client.post("/v1/ticks", json=[TICK, {**TICK, "symbol": "MSFT"}], headers=AUTH)
        assert response.status == 202
        body = await response.json()
        assert body["accepted"] == 2 and body["topic"] == "market.ticks"
        assert [d["key"] for d in body["deliveries"]] == ["AAPL", "MSFT"]
        response = await client.post("/v1/news", json={"ts": "2013-03-01", "headline": "Apple beats", "symbols": ["AAPL"]},
                                      headers=AUTH)
        assert response.status == 202
        news_id = (await response.json())["deliveries"][0]["key"]
    topics = [(topic, key) for topic, key, _ in publisher.published]
    assert topics == [("market.ticks", "AAPL"), ("market.ticks", "MSFT"), ("news.items", news_id)]


@pytest.mark.parametrize("body, field, words", [
    ({**TICK, "price": -1}, "price", "> 0"),
    ({**TICK, "symbol": "not a symbol"}, "symbol", "1-32"),
    ([TICK, {**TICK, "ts": "soon"}], "[1].ts", "ISO 8601"),
    ({**TICK, "colour": "red"}, "colour", "unknown field"),
])
async def test_bad_ticks_get_400_naming_the_field(body, field, words):
    publisher = FakePublisher()
    async with bridge_client(publisher=publisher) as client:
        response = await client.post("/v1/ticks", json=body, headers=AUTH)
        assert response.status == 400
        error = await response.json()
        assert error["error"] == "invalid tick" and error["field"] == field and words in error["problem"]
    assert publisher.published == []


async def test_malformed_json_and_oversize_bodies():
    async with bridge_client(max_body_bytes=2048) as client:
        response = await client.post("/v1/ticks", data=b'{"price": NaN}', headers=AUTH)
        assert response.status == 400 and "NaN" in (await response.json())["problem"]
        response = await client.post("/v1/ticks", data=b"{", headers=AUTH)
        assert response.status == 400 and (await response.json())["error"] == "invalid JSON"
        response = await client.post("/v1/ticks", data=b"[" + b"1," * 5000 + b"1]", headers=AUTH)
        assert response.status == 413
        assert "2048 bytes" in (await response.json())["problem"]


async def test_dependencies_down_give_503_not_500():
    async with bridge_client(publisher=FakePublisher(fail=True), store=FakeStore(down=True)) as client:
        response = await client.post("/v1/ticks", json=TICK, headers=AUTH)
        assert response.status == 503 and response.headers["Retry-After"]
        assert (await client.get("/v1/decisions", headers=AUTH)).status == 503
        response = await client.get("/readyz")
        assert response.status == 503
        checks = (await response.json())["checks"]
        assert checks["postgres"]["ok"] is False and checks["kafka"]["ok"] is False


async def test_reads_and_query_validation():
    store = FakeStore()
    async with bridge_client(store=store) as client:
        body = await (await client.get("/v1/decisions", params={"symbol": "IBM", "limit": "5"}, headers=AUTH)).json()
        assert body["decisions"][0]["votes"][0]["agent"] == "technical"
        assert ("decisions", "IBM", 5) in store.calls
        response = await client.get("/v1/decisions", params={"limit": "0"}, headers=AUTH)
        assert response.status == 400 and (await response.json())["field"] == "limit"
        response = await client.get("/v1/bars", params={"interval": "1 week"}, headers=AUTH)
        assert response.status == 400 and (await response.json())["field"] == "interval"
        agents = await (await client.get("/v1/agents", headers=AUTH)).json()
        assert agents["agents"][0]["lag"] == 3 and agents["consumer_groups"][0]["group"] == "algo-technical"
        pnl = await (await client.get("/v1/pnl", headers=AUTH)).json()
        assert pnl["totals"]["equity"] == 12.0


async def test_unknown_routes_and_methods_are_json_errors():
    async with bridge_client() as client:
        response = await client.get("/nope")
        assert response.status == 404 and (await response.json())["error"] == "not found"
        response = await client.put("/v1/ticks", json=TICK, headers=AUTH)
        assert response.status == 405 and response.headers["Allow"] == "POST"
        response = await client.get("/static/../bridge.py")
        assert response.status == 404


async def test_metrics_count_requests_and_publishes():
    async with bridge_client() as client:
        await client.post("/v1/ticks", json=TICK, headers=AUTH)
        await client.post("/v1/ticks", json={}, headers=AUTH)
        text = await (await client.get("/metrics")).text()
    assert 'algo_bridge_published_messages_total{topic="market.ticks"} 1.0' in text
    assert 'algo_bridge_requests_total{method="POST",route="/v1/ticks",status="400"} 1.0' in text
    for name in ("algo_bridge_websocket_clients", "algo_bridge_websocket_dropped_clients_total",
                 "algo_bridge_fanout_latency_seconds_bucket"):
        assert name in text


async def test_metrics_carry_each_agents_lag_and_raise_the_lag_alarm():
    settings = dataclasses.replace(Settings(), api_token=TOKEN, lag_alarm_messages=3, lag_alarm_after_s=0.0)
    app = create_app(settings, kafka=False, publisher=FakePublisher(), store=FakeStore(), heartbeat_s=0)
    async with TestClient(TestServer(app)) as client:
        text = await (await client.get("/metrics")).text()
    assert 'algo_consumer_lag{agent="technical"} 3.0' in text
    assert 'algo_consumer_lag_alarm{agent="technical"} 1.0' in text  # 3 messages behind, the alarm level
    assert 'algo_consumer_stalled{agent="technical"} 0.0' in text  # just seen: not idle for 120 s yet


async def test_metrics_serve_while_the_lag_query_fails():
    class NoKafka(FakeStore):
        async def consumer_lag(self):
            raise StoreUnavailable("Kafka: down")

    async with bridge_client(store=NoKafka()) as client:
        response = await client.get("/metrics")
        text = await response.text()
    assert response.status == 200 and "algo_bridge_lag_query_errors_total 1.0" in text


async def test_dashboard_and_openapi():
    async with bridge_client() as client:
        page = await client.get("/")
        assert page.status == 200 and "text/html" in page.headers["Content-Type"]
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        assert "/static/dashboard.js" in await page.text()
        for name in ("dashboard.js", "dashboard.css"):
            assert (await client.get(f"/static/{name}")).status == 200
        document = await (await client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    assert document == openapi_document()
    routes = {(r.method.lower(), r.resource.canonical) for r in client.app.router.routes()}
    documented = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert routes == documented


async def test_static_files_are_there():
    assert {"index.html", "dashboard.js", "dashboard.css"} <= {p.name for p in STATIC_DIR.iterdir()}
    text = (STATIC_DIR / "index.html").read_text()
    assert "http://" not in text and "https://" not in text  # nothing from the web


async def test_websocket_auth_origin_and_protocol():
    async with bridge_client(origins=("http://dash.example:9000",)) as client:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect("/v1/stream")
        assert refused.value.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect("/v1/stream", params={"token": TOKEN}, headers={"Origin": "http://evil.example"})
        assert refused.value.status == 403
        host = f"{client.server.host}:{client.server.port}"
        for origin in (f"http://{host}", "http://dash.example:9000", None):
            headers = {"Origin": origin} if origin else {}
            async with client.ws_connect("/v1/stream", params={"token": TOKEN}, headers=headers) as ws:
                assert (await ws.receive_json())["type"] == "hello"
        async with client.ws_connect("/v1/stream", headers=AUTH) as ws:
            assert (await ws.receive_json())["type"] == "hello"
            await ws.send_json({"action": "subscribe", "topics": ["fills"], "symbols": ["AAPL"]})
            assert (await ws.receive_json())["type"] == "subscribed"
            client.app[BRIDGE].hub.emit(
                "fills", "AAPL", 0, 7, 123, {"symbol": "AAPL", "price": 1.0})
            event = await ws.receive_json()
            assert (event["type"], event["topic"], event["offset"], event["value"]["price"]) == ("event", "fills", 7, 1.0)
        response = await client.get("/v1/stream", headers=AUTH)  # plain HTTP
        assert response.status == 426


async def test_cors_for_listed_origins_only():
    async with bridge_client(origins=("http://dash.example:9000",)) as client:
        preflight = await client.options("/v1/ticks", headers={"Origin": "http://dash.example:9000",
                                                                "Access-Control-Request-Method": "POST"})
        assert preflight.status == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == "http://dash.example:9000"
        assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
        response = await client.get("/v1/pnl", headers={**AUTH, "Origin": "http://dash.example:9000"})
        assert response.headers["Access-Control-Allow-Origin"] == "http://dash.example:9000"
        response = await client.get("/v1/pnl", headers={**AUTH, "Origin": "http://evil.example"})
        assert "Access-Control-Allow-Origin" not in response.headers
        preflight = await client.options("/v1/ticks", headers={"Origin": "http://evil.example",
                                                                "Access-Control-Request-Method": "POST"})
        assert preflight.status == 403


def test_origin_and_token_rules():
    assert origin_allowed(None, "127.0.0.1:8000", ())
    assert origin_allowed("http://127.0.0.1:8000", "127.0.0.1:8000", ())
    assert not origin_allowed("http://127.0.0.1:9999", "127.0.0.1:8000", ())
    assert not origin_allowed("null", "127.0.0.1:8000", ())
    assert origin_allowed("https://x.example/", "127.0.0.1:8000", ("https://x.example",))
    assert origin_allowed("https://anything", "h", ("*",))
    assert token_matches("abc", "abc") and not token_matches("abd", "abc")
    assert not token_matches("", "") and not token_matches("é\ud800", "abc")


async def test_a_stalled_socket_is_dropped_and_the_others_keep_up():
    """Real sockets: a client that stops reading fills its TCP buffers, then its queue, and is closed
    with 1013; a reading client gets every event meanwhile."""
    import asyncio
    import base64
    import os
    import socket

    async with bridge_client(queue_size=20) as client:
        hub = client.app[BRIDGE].hub
        # the stalled one: a raw websocket handshake on a socket with a tiny receive buffer, then silence
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (client.server.host, client.server.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /v1/stream?token={TOKEN} HTTP/1.1\r\nHost: {client.server.host}:{client.server.port}\r\n"
                      f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
        subscribe = b'{"action":"subscribe","topics":["market.ticks"]}'
        mask = os.urandom(4)
        writer.write(bytes([0x81, 0x80 | len(subscribe)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(subscribe)))
        await writer.drain()

        async with client.ws_connect("/v1/stream", headers=AUTH) as ws:
            await ws.send_json({"action": "subscribe", "topics": ["market.ticks"]})
            while (await ws.receive_json())["type"] != "subscribed":
                pass
            while sum(1 for c in hub.clients if c.filters) < 2:
                await asyncio.sleep(0.01)
            payload = {"symbol": "AAPL", "blob": "x" * 20_000}
            received = 0
            for i in range(400):
                hub.emit("market.ticks", "AAPL", 0, i, None, payload)
                await asyncio.sleep(0)
                while True:  # keep up as a healthy client does
                    try:
                        message = await ws.receive_json(timeout=0.001)
                    except asyncio.TimeoutError:
                        break
                    received += message["type"] == "event"
            while received < 400:
                received += (await ws.receive_json(timeout=10))["type"] == "event"
        assert hub.metrics.ws_dropped_clients._value.get() == 1
        assert received == 400
        writer.close()
