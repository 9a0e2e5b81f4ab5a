"""The bridge's HTTP routes (REST, health, metrics, dashboard, websocket) and their OpenAPI document."""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from functools import lru_cache

from aiohttp import WSMsgType, web
from pydantic import TypeAdapter

from streams.bridge.inputs import (
    INTERVAL_PATTERN, InputError, parse_json, parse_news, parse_ticks, query_int, query_interval, query_symbol, query_text,
    query_time,
)
from streams.bridge.models import TIMESTAMP_SCHEMA, Symbol, bounded_text, component_schemas
from streams.bridge.memory_panel import memory_panel
from streams.bridge.metrics import BridgeMetrics
from streams.bridge.publish import Publisher, PublishUnavailable
from streams.resources import static_dir
from streams.bridge.store import Store, StoreUnavailable
from streams.bridge.hub import HubUnavailable, StreamHub
from streams.errors import CodecError
from streams.settings import Settings

log = logging.getLogger("algo.bridge")

STATIC_DIR = static_dir()
STATIC_TYPES = {".js": "application/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".html": "text/html"}
VERSION = "1"


@dataclass
class Bridge:
    """Everything one bridge app holds, reachable from handlers as request.app[BRIDGE]."""
    settings: Settings
    metrics: BridgeMetrics
    hub: StreamHub
    publisher: Publisher
    store: Store
    max_body_bytes: int
    started: float = field(default_factory=time.monotonic)


BRIDGE = web.AppKey("bridge", Bridge)


def json_response(body, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(text=json.dumps(body, separators=(",", ":"), allow_nan=False), status=status,
                        content_type="application/json", headers=headers)


def error_response(status: int, error: str, problem: str | None = None, field: str | None = None,
                   headers: dict | None = None) -> web.Response:
    return json_response({"error": error, "field": field, "problem": problem}, status, headers)


# --- health, metrics, docs, dashboard ---------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    bridge = request.app[BRIDGE]
    return json_response({"status": "ok", "uptime_s": round(time.monotonic() - bridge.started, 3),
                          "websocket_clients": len(bridge.hub.clients), "version": VERSION})


async def readyz(request: web.Request) -> web.Response:
    bridge = request.app[BRIDGE]

    async def kafka() -> str:
        brokers = await asyncio.wait_for(asyncio.to_thread(bridge.store.kafka_ping, 3.0), 5)
        return f"{brokers} broker(s)"

    async def registry() -> str:
        import aiohttp

        url = bridge.settings.schema_registry_url + "/subjects"
        timeout = aiohttp.ClientTimeout(total=3)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
            if response.status != 200:
                raise RuntimeError(f"GET {url} answered {response.status}")
            subjects = await response.json(content_type=None)
            return f"{len(subjects)} subject(s)"

    async def postgres() -> str:
        await asyncio.wait_for(bridge.store.ping(), 5)
        return "ok"

    names = ("kafka", "registry", "postgres")
    results = await asyncio.gather(kafka(), registry(), postgres(), return_exceptions=True)
    checks = {}
    for name, result in zip(names, results):
        if isinstance(result, BaseException):
            detail = str(result) or type(result).__name__
            checks[name] = {"ok": False, "detail": detail[:300]}
        else:
            checks[name] = {"ok": True, "detail": result}
    checks["stream"] = {"ok": True, "detail": "connected" if bridge.hub.connected.is_set() else "idle"}
    ready = all(c["ok"] for c in checks.values())
    return json_response({"ready": ready, "checks": checks}, 200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    bridge = request.app[BRIDGE]
    try:
        bridge.metrics.observe_groups(time.monotonic(), await bridge.store.consumer_lag())
    except StoreUnavailable:  # Kafka down: the other metrics still serve, the lag gauges keep their last value
        bridge.metrics.lag_query_errors.inc()
    return web.Response(body=bridge.metrics.exposition(), headers={"Content-Type": bridge.metrics.content_type})


async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document())


async def dashboard(request: web.Request) -> web.Response:
    return web.FileResponse(STATIC_DIR / "index.html", headers={
        "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache",
        "Referrer-Policy": "no-referrer",  # the page's URL carries ?token=: not in what it loads
        "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
                                   "style-src 'self'; script-src 'self'; base-uri 'none'; frame-ancestors 'none'",
    })


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = STATIC_DIR / name
    if "/" in name or name.startswith(".") or path.suffix not in STATIC_TYPES or not path.is_file():
        return error_response(404, "not found", f"no static file {name[:80]!r}")
    return web.FileResponse(path, headers={"Content-Type": STATIC_TYPES[path.suffix] + "; charset=utf-8",
                                           "Cache-Control": "no-cache"})


# --- publishing --------------------------------------------------------------------------------------------


async def _read_json(request: web.Request):
    return parse_json(await request.read())  # aiohttp raises 413 above client_max_size


async def _publish(request: web.Request, topic: str, records: list[dict], key_field: str, what: str) -> web.Response:
    bridge = request.app[BRIDGE]
    try:
        delivered = await bridge.publisher.publish(topic, [(r[key_field], r) for r in records])
    except CodecError as error:  # validation should have caught it; still the client's data
        bridge.metrics.rejected.labels(topic, "400").inc()
        return error_response(400, f"invalid {what}", str(error))
    except PublishUnavailable as error:  # names the service: Kafka or the schema registry
        return error_response(503, f"{error.service} unavailable", str(error), headers={"Retry-After": "5"})
    bridge.metrics.published.labels(topic).inc(len(delivered))
    return json_response({"accepted": len(delivered), "topic": topic,
                          "deliveries": [{"key": d.key, "partition": d.partition, "offset": d.offset}
                                         for d in delivered]}, 202)


async def post_ticks(request: web.Request) -> web.Response:
    try:
        records = parse_ticks(await _read_json(request))
    except InputError as error:
        request.app[BRIDGE].metrics.rejected.labels("market.ticks", "400").inc()
        return json_response(error.body(), 400)
    return await _publish(request, "market.ticks", records, "symbol", "tick")


async def post_news(request: web.Request) -> web.Response:
    try:
        records = parse_news(await _read_json(request))
    except InputError as error:
        request.app[BRIDGE].metrics.rejected.labels("news.items", "400").inc()
        return json_response(error.body(), 400)
    return await _publish(request, "news.items", records, "id", "news item")


# --- reads -------------------------------------------------------------------------------------------------


def _reader(fetch):
    async def handler(request: web.Request) -> web.Response:
        bridge = request.app[BRIDGE]
        try:
            return json_response(await fetch(bridge, request.query))
        except InputError as error:
            return json_response(error.body(), 400)
        except StoreUnavailable as error:
            return error_response(503, "unavailable", str(error), headers={"Retry-After": "5"})
    return handler


async def _decisions(bridge: Bridge, query) -> dict:
    symbol, limit = query_symbol(query), query_int(query, "limit", 50, 1, 1000)
    return {"decisions": await bridge.store.decisions(symbol, limit)}


async def _bars(bridge: Bridge, query) -> dict:
    symbol, limit = query_symbol(query), query_int(query, "limit", 500, 1, 5000)
    interval = query_interval(query, bridge.settings.bar_interval)
    return {"bars": await bridge.store.bars(symbol, interval, limit)}


async def _positions(bridge: Bridge, query) -> dict:
    return {"positions": await bridge.store.positions(query_text(query, "account"))}


async def _pnl(bridge: Bridge, query) -> dict:
    accounts = await bridge.store.accounts(query_text(query, "account"))
    totals = {k: sum(a[k] or 0.0 for a in accounts) for k in ("equity", "cash", "realised_pnl", "unrealised_pnl", "fees")}
    return {"accounts": accounts, "totals": totals}


async def _fills(bridge: Bridge, query) -> dict:
    symbol, account = query_symbol(query), query_text(query, "account")
    return {"fills": await bridge.store.fills(symbol, account, query_int(query, "limit", 50, 1, 1000))}


async def _agents(bridge: Bridge, query) -> dict:
    agents = await bridge.store.agents()
    try:
        groups, lag_error = await bridge.store.consumer_lag(), None
    except StoreUnavailable as error:
        groups, lag_error = [], str(error)
    lag = {g["agent"]: g for g in groups}
    for agent in agents:
        group = lag.get(agent["agent"])
        agent["lag"] = group["lag"] if group else None
    return {"agents": agents, "consumer_groups": groups, "lag_error": lag_error}


async def _news(bridge: Bridge, query) -> dict:
    symbol, limit = query_symbol(query), query_int(query, "limit", 200, 1, 1000)
    since, until = query_time(query, "since"), query_time(query, "until")
    return {"news": await bridge.store.news(symbol, since, until, limit)}


async def _analyst_votes(bridge: Bridge, query) -> dict:
    symbol, limit = query_symbol(query), query_int(query, "limit", 20, 1, 200)
    return {"votes": await bridge.store.analyst_votes(symbol, limit)}


async def _memory(bridge: Bridge, query) -> dict:
    return await memory_panel(bridge.store, bridge.settings, query_int(query, "limit", 10, 1, 100))


get_decisions = _reader(_decisions)
get_bars = _reader(_bars)
get_positions = _reader(_positions)
get_pnl = _reader(_pnl)
get_fills = _reader(_fills)
get_agents = _reader(_agents)
get_news = _reader(_news)
get_analyst_votes = _reader(_analyst_votes)
get_memory = _reader(_memory)


# --- websocket ---------------------------------------------------------------------------------------------


async def stream(request: web.Request) -> web.StreamResponse:
    """Auth and the Origin check happen in the middlewares; this is the socket itself."""
    bridge = request.app[BRIDGE]
    hub = bridge.hub
    ws = web.WebSocketResponse(heartbeat=hub.heartbeat_s or None, compress=False, max_msg_size=64 * 1024)
    if not ws.can_prepare(request).ok:
        bridge.metrics.ws_refused.labels("not-websocket").inc()
        return error_response(426, "websocket required",
                              "connect with a websocket client (Upgrade: websocket) and send "
                              '{"action": "subscribe", "topics": [...]}', headers={"Upgrade": "websocket"})
    if len(hub.clients) >= hub.max_clients:
        bridge.metrics.ws_refused.labels("capacity").inc()
        return error_response(503, "too many websocket clients", f"limit {hub.max_clients}",
                              headers={"Retry-After": "5"})
    await ws.prepare(request)
    try:
        client = hub.attach(ws, peer=f"{request.remote}", transport=request.transport)
    except HubUnavailable as error:
        await ws.close(code=1013, message=str(error).encode()[:120])
        return ws
    try:
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await hub.handle(client, message.data)
            elif message.type == WSMsgType.BINARY:
                await hub.handle(client, b"binary")
            elif message.type == WSMsgType.ERROR:
                break
    finally:
        await hub.detach(client)
    return ws


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", dashboard, allow_head=False)
    r.add_get("/dashboard", dashboard, allow_head=False)
    r.add_get("/static/{name}", static, allow_head=False)
    r.add_get("/healthz", healthz, allow_head=False)
    r.add_get("/readyz", readyz, allow_head=False)
    r.add_get("/metrics", metrics, allow_head=False)
    r.add_get("/openapi.json", openapi, allow_head=False)
    r.add_post("/v1/ticks", post_ticks)
    r.add_post("/v1/news", post_news)
    r.add_get("/v1/decisions", get_decisions, allow_head=False)
    r.add_get("/v1/bars", get_bars, allow_head=False)
    r.add_get("/v1/positions", get_positions, allow_head=False)
    r.add_get("/v1/pnl", get_pnl, allow_head=False)
    r.add_get("/v1/fills", get_fills, allow_head=False)
    r.add_get("/v1/agents", get_agents, allow_head=False)
    r.add_get("/v1/news", get_news, allow_head=False)
    r.add_get("/v1/analyst/votes", get_analyst_votes, allow_head=False)
    r.add_get("/v1/memory", get_memory, allow_head=False)
    r.add_get("/v1/stream", stream, allow_head=False)


# --- OpenAPI ----------------------------------------------------------------------------------------------

def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    text = {400: "Bad input: the body names the field and the problem", 401: "Missing or wrong bearer token",
            403: "Origin not allowed", 404: "Not found", 413: "Body larger than the configured limit",
            426: "Not a websocket upgrade request", 503: "A dependency is unavailable, or no API token is configured"}
    return {str(code): _json(_ref("Error"), text[code]) for code in codes}


def _text_schema(max_len: int, min_len: int = 1) -> dict:
    return TypeAdapter(bounded_text(max_len, min_len)).json_schema()


def _symbol_schema() -> dict:
    return TypeAdapter(Symbol).json_schema()


def _schemas() -> dict:
    problem = {"type": "object", "properties": {"field": {"type": ["string", "null"]}, "problem": {"type": "string"}},
               "required": ["field", "problem"]}
    num, text, ts = {"type": ["number", "null"]}, {"type": "string"}, {"type": "string", "format": "date-time"}
    nts = {"type": ["string", "null"], "format": "date-time"}
    return {
        "Error": {"type": "object", "required": ["error"], "properties": {
            "error": text, "field": {"type": ["string", "null"]}, "problem": {"type": ["string", "null"]},
            "errors": {"type": "array", "items": problem}}},
        **component_schemas(),  # Tick, TickBody, NewsItem, NewsBody: from the pydantic models
        "Published": {"type": "object", "required": ["accepted", "topic", "deliveries"], "properties": {
            "accepted": {"type": "integer", "minimum": 1}, "topic": text,
            "deliveries": {"type": "array", "items": {"type": "object", "required": ["key", "partition", "offset"],
                                                      "properties": {"key": text, "partition": {"type": "integer"},
                                                                     "offset": {"type": "integer"}}}}}},
        "Vote": {"type": "object", "properties": {
            "signal_id": text, "agent": text, "action": {"enum": ["BUY", "SELL", "HOLD"]},
            "confidence": {"type": "number"}, "weight": {"type": "number"}}},
        "Decision": {"type": "object", "required": ["decision_id", "symbol", "ts", "action", "votes"], "properties": {
            "decision_id": text, "symbol": text, "ts": ts, "action": {"enum": ["BUY", "SELL", "HOLD"]},
            "target_position": {"type": "number"}, "agreement": {"type": "number"},
            "votes": {"type": "array", "items": _ref("Vote")}, "rationale": text,
            "verdict": {"enum": ["APPROVE", "RESIZE", "REJECT", None]}, "approved_quantity": num,
            "reason_codes": {"type": ["array", "null"], "items": text}}},
        "Bar": {"type": "object", "required": ["symbol", "interval", "ts", "close"], "properties": {
            "symbol": text, "interval": text, "ts": ts, "open": {"type": "number"}, "high": {"type": "number"},
            "low": {"type": "number"}, "close": {"type": "number"}, "volume": {"type": "number"}}},
        "Position": {"type": "object", "required": ["account", "symbol", "quantity"], "properties": {
            "account": text, "symbol": text, "quantity": num, "avg_price": num, "last_price": num,
            "unrealised_pnl": num, "realised_pnl": num, "updated_at": nts}},
        "Fill": {"type": "object", "required": ["fill_id", "account", "symbol", "ts", "side", "quantity", "price"],
                 "properties": {"fill_id": text, "order_id": text, "account": text, "symbol": text, "ts": ts,
                                "side": {"enum": ["BUY", "SELL"]}, "quantity": num, "price": num, "fee": num}},
        "Account": {"type": "object", "required": ["account", "equity"], "properties": {
            "account": text, "cash": num, "equity": num, "realised_pnl": num, "unrealised_pnl": num, "fees": num,
            "gross_exposure": num, "net_exposure": num, "updated_at": nts}},
        "Agent": {"type": "object", "required": ["agent"], "properties": {
            "agent": text, "configured_weight": num, "hit_rate": num, "scored_calls": {"type": "integer"},
            "signals": {"type": "integer"}, "last_signal_at": nts, "updated_at": nts, "last_signal_ts": nts,
            "signal_rows": {"type": "integer"}, "lag": {"type": ["integer", "null"]}}},
        "ConsumerGroup": {"type": "object", "required": ["group", "agent", "lag"], "properties": {
            "group": text, "agent": text, "state": text, "lag": {"type": "integer"},
            "topics": {"type": "object", "additionalProperties": {"type": "integer"}}}},
        "News": {"type": "object", "required": ["id", "ts", "source", "headline", "symbols"], "properties": {
            "id": text, "ts": ts, "source": text, "headline": text, "body": text, "url": {"type": ["string", "null"]},
            "symbols": {"type": "array", "items": text,
                        "description": "declared by the item, and those of analyst votes that cite it"}}},
        "CitedNews": {"type": "object", "required": ["id"], "properties": {
            "id": text, "ts": nts, "source": {"type": ["string", "null"]}, "headline": {"type": ["string", "null"]},
            "url": {"type": ["string", "null"]}}},
        "AnalystVote": {"type": "object", "required": ["signal_id", "symbol", "ts", "action", "confidence", "cited"],
                        "properties": {
            "signal_id": text, "symbol": text, "ts": ts, "action": {"enum": ["BUY", "SELL", "HOLD"]},
            "confidence": {"type": "number"}, "rationale": text, "model_version": text,
            "cited": {"type": "array", "items": _ref("CitedNews"),
                      "description": "the news ids in input_refs, in order (the new item first); headline null "
                                     "while an item is not in the vault"}}},
        "RedisMemory": {"type": "object", "required": ["used_bytes", "max_bytes"], "properties": {
            "used_bytes": {"type": ["integer", "null"]}, "max_bytes": {"type": ["integer", "null"]},
            "error": {"type": ["string", "null"]}}},
        "TieringRound": {"type": "object", "required": ["ts", "message"], "properties": {
            "ts": ts, "message": text, "demoted": num, "dropped": num, "used_before": num, "used_after": num,
            "maxmemory": num, "policy_version": text, "hit_ratio": num,
            "keys": {"type": "array", "items": text}, "actions": {"type": "array", "items": text},
            "scores": {"type": "array", "items": num}}},
        "Check": {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}, "detail": text}},
        "Ready": {"type": "object", "required": ["ready", "checks"], "properties": {
            "ready": {"type": "boolean"}, "checks": {"type": "object", "additionalProperties": _ref("Check")}}},
        "Health": {"type": "object", "required": ["status"], "properties": {
            "status": {"const": "ok"}, "uptime_s": {"type": "number"}, "websocket_clients": {"type": "integer"},
            "version": text}},
    }


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


SYMBOL_PARAM = _query("symbol", _symbol_schema(), "only this symbol")
ACCOUNT_PARAM = _query("account", _text_schema(64), "only this account")
TIME_SCHEMA = TIMESTAMP_SCHEMA  # query_time takes what a posted timestamp takes


def _read_op(summary: str, result: dict, params: list, tag: str = "read") -> dict:
    return {"get": {"summary": summary, "tags": [tag], "parameters": params,
                    "responses": {"200": _json(result, "OK"), **_errors(400, 401, 503)}}}


def _publish_op(summary: str, body: str, description: str) -> dict:
    return {"post": {
        "summary": summary, "description": description, "tags": ["publish"],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(body)}}},
        "responses": {"202": _json(_ref("Published"), "Accepted: every message acknowledged by Kafka (acks=all)"),
                      **_errors(400, 401, 413, 503)}}}


def _dashboard_op(summary: str) -> dict:
    return {"get": {
        "summary": summary, "tags": ["dashboard"], "security": [],
        "parameters": [_query("token", {"type": "string"}, "the API token (the page keeps it and drops it from the URL)"),
                       _query("symbols", {"type": "string"}, "comma-separated symbols to chart (default: up to 12)")],
        "responses": {"200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}},
                      **_errors(400)}}}


@lru_cache(maxsize=1)
def query_parameters() -> dict[tuple[str, str], frozenset[str]]:
    """(METHOD, route) -> the query parameters the document names; others get 400."""
    out = {}
    for path, operations in openapi_document()["paths"].items():
        for method, operation in operations.items():
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
            out[(method.upper(), path)] = frozenset(names)
    return out


def unknown_query_parameter(request: web.Request) -> str | None:
    resource = getattr(request.match_info.route, "resource", None)
    if resource is None:
        return None
    allowed = query_parameters().get((request.method, resource.canonical))
    if allowed is None:
        return None
    return next((name for name in request.query if name not in allowed), None)


def openapi_document() -> dict:
    """OpenAPI 3.1 for every route; the websocket is described on GET /v1/stream. Any route answers an
    unknown query parameter with 400."""
    document = _document()
    for operations in document["paths"].values():
        for operation in operations.values():
            operation["responses"].setdefault("400", _errors(400)["400"])
    return document


def _document() -> dict:
    limit = {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "algo bridge", "version": VERSION,
            "description": (
                "REST and websocket bridge of the algo trading pipeline. Everything under /v1/ needs "
                "`Authorization: Bearer <ALGO_API_TOKEN>` (the websocket also takes `?token=`); health, "
                "readiness, metrics, this document and the dashboard are open."),
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "the value of ALGO_API_TOKEN"}},
        },
        "paths": {
            "/healthz": {"get": {"summary": "The process is alive", "tags": ["ops"], "security": [],
                                 "responses": {"200": _json(_ref("Health"), "alive")}}},
            "/readyz": {"get": {"summary": "Kafka, the schema registry and Postgres answer", "tags": ["ops"],
                                "security": [],
                                "responses": {"200": _json(_ref("Ready"), "ready"),
                                              "503": _json(_ref("Ready"), "not ready: see checks")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "tags": ["ops"], "security": [],
                                 "responses": {"200": {"description": "text exposition format",
                                                       "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/openapi.json": {"get": {"summary": "This document", "tags": ["ops"], "security": [],
                                      "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")}}},
            "/": _dashboard_op("The live dashboard"),
            "/dashboard": _dashboard_op("The live dashboard (same page as /)"),
            "/static/{name}": {"get": {
                "summary": "The dashboard's scripts and styles", "tags": ["dashboard"], "security": [],
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "file", "content": {
                    "application/javascript": {"schema": {"type": "string"}},
                    "text/css": {"schema": {"type": "string"}}}}, **_errors(404)}}},
            "/v1/ticks": _publish_op(
                "Publish market ticks", "TickBody",
                "One tick or a list; validated against the MarketTick Avro schema, Avro-encoded through the "
                "registry and produced to market.ticks keyed by symbol (murmur2 partitioning)."),
            "/v1/decisions": _read_op(
                "Recent consensus decisions, newest first, with their votes and risk verdict",
                {"type": "object", "required": ["decisions"],
                 "properties": {"decisions": {"type": "array", "items": _ref("Decision")}}},
                [SYMBOL_PARAM, _query("limit", limit, "at most this many")]),
            "/v1/bars": _read_op(
                "Recent bars from the vault, oldest first",
                {"type": "object", "required": ["bars"], "properties": {"bars": {"type": "array", "items": _ref("Bar")}}},
                [SYMBOL_PARAM, _query("limit", {**limit, "maximum": 5000, "default": 500}, "at most this many"),
                 _query("interval", {"type": "string", "pattern": INTERVAL_PATTERN}, "bar interval (default BAR_INTERVAL)")]),
            "/v1/positions": _read_op(
                "Positions of the paper book",
                {"type": "object", "required": ["positions"],
                 "properties": {"positions": {"type": "array", "items": _ref("Position")}}},
                [ACCOUNT_PARAM]),
            "/v1/pnl": _read_op(
                "Cash, equity and PnL per account, and totals",
                {"type": "object", "required": ["accounts", "totals"],
                 "properties": {"accounts": {"type": "array", "items": _ref("Account")},
                                "totals": {"type": "object", "additionalProperties": {"type": "number"}}}},
                [ACCOUNT_PARAM]),
            "/v1/fills": _read_op(
                "Recent fills of the paper broker, newest first",
                {"type": "object", "required": ["fills"],
                 "properties": {"fills": {"type": "array", "items": _ref("Fill")}}},
                [SYMBOL_PARAM, ACCOUNT_PARAM, _query("limit", limit, "at most this many")]),
            "/v1/agents": _read_op(
                "Agent standing (weights, hit rates, signals) and the consumer lag of each agent's group",
                {"type": "object", "required": ["agents", "consumer_groups"],
                 "properties": {"agents": {"type": "array", "items": _ref("Agent")},
                                "consumer_groups": {"type": "array", "items": _ref("ConsumerGroup")},
                                "lag_error": {"type": ["string", "null"]}}},
                []),
            "/v1/news": {**_read_op(
                "News items from the vault, newest first: for a chart's symbol and time range",
                {"type": "object", "required": ["news"], "properties": {"news": {"type": "array", "items": _ref("News")}}},
                [_query("symbol", _symbol_schema(), "only items about this symbol (declared, or cited by an analyst "
                                                    "vote on it)"),
                 _query("since", TIME_SCHEMA, "published at or after (ISO 8601, no zone = UTC; or epoch microseconds)"),
                 _query("until", TIME_SCHEMA, "published at or before (same forms as since)"),
                 _query("limit", {**limit, "maximum": 1000, "default": 200}, "at most this many")]),
                **_publish_op(
                "Publish news items", "NewsBody",
                "One news item or a list; validated against NewsItem and produced to news.items keyed by id.")},
            "/v1/analyst/votes": _read_op(
                "The analyst's recent votes, newest first, with the headlines each cites",
                {"type": "object", "required": ["votes"],
                 "properties": {"votes": {"type": "array", "items": _ref("AnalystVote")}}},
                [SYMBOL_PARAM, _query("limit", {**limit, "maximum": 200, "default": 20}, "at most this many")]),
            "/v1/memory": _read_op(
                "The Memory agent: Redis used/max memory, its latest counters (hit ratio, demotions, drops) and "
                "its recent tiering rounds, newest first",
                {"type": "object", "required": ["redis", "agent", "decisions"],
                 "properties": {"redis": _ref("RedisMemory"), "agent": {"type": ["object", "null"]},
                                "decisions": {"type": "array", "items": _ref("TieringRound")}}},
                [_query("limit", {**limit, "maximum": 100, "default": 10}, "at most this many rounds")]),
            "/v1/stream": {"get": {
                "summary": "Websocket of live events",
                "description": (
                    "Upgrade to a websocket, then send `{\"action\": \"subscribe\", \"topics\": [...], "
                    "\"symbols\": [...], \"since\": <event id>}`. Events arrive as `{\"type\": \"event\", \"id\", "
                    "\"topic\", \"key\", \"partition\", \"offset\", \"timestamp\", \"value\"}`; control messages are "
                    "hello, subscribed, unsubscribed, gap, heartbeat, pong and error. A client more than the "
                    "queue size behind is closed with code 1013 and may resume with `since`."),
                "tags": ["stream"],
                "parameters": [_query("token", {"type": "string"}, "the API token, for browsers (they cannot set headers)")],
                "responses": {"101": {"description": "Switching to the websocket protocol"},
                              **_errors(401, 403, 426, 503)}}},
        },
        "security": [{"bearer": []}],
    }
