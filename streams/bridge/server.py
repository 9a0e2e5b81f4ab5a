"""`algo bridge`: the aiohttp bridge between the pipeline and people or programs.

- REST under /v1/: publish ticks and news (validated by the pydantic models of streams.bridge.models,
  which a test holds to the Avro schemas; 400 naming the field, 413 above the body limit), read decisions, bars, positions, PnL and agents; `/healthz`, `/readyz`, `/metrics`,
  `/openapi.json` (OpenAPI 3.1), the dashboard at `/`.
- Websocket `/v1/stream`: subscribe to topics and symbols, receive decoded events as JSON as they
  happen, resume with `since` (see streams.bridge.hub).
- Auth: everything under /v1/ needs `Authorization: Bearer <ALGO_API_TOKEN>`; the websocket also
  takes `?token=` (browsers cannot set headers on websockets). With no token configured those routes
  answer 503 "no API token configured"; `algo bridge` (run_bridge) instead generates a random token
  at start and prints it with the dashboard URL. A configured token is never printed, and the access
  log (--access-log) shows `token=***`. Health, readiness, metrics, the OpenAPI document and
  the dashboard's static files are open.
- Origins: a websocket upgrade carrying an Origin header is accepted when it is the bridge's own
  origin (same host:port) or listed in ALGO_ALLOWED_ORIGINS (`*` allows any); others get 403. REST
  answers CORS (and preflights) for the listed origins only.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import re
import secrets
import time
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.web_log import AccessLogger

from streams.bridge.api import BRIDGE, Bridge, add_routes, error_response, unknown_query_parameter
from streams.bridge.metrics import BridgeMetrics
from streams.bridge.publish import Publisher
from streams.bridge.store import Store
from streams.bus.liveness import LivenessTracker
from streams.bridge.hub import StreamHub
from streams.errors import AlgoError
from streams.settings import Settings

log = logging.getLogger("algo.bridge")
ACCESS_LOG = logging.getLogger("algo.bridge.access")

MAX_BODY_BYTES = 1 << 20          # 1 MiB: POST bodies above get 413
PROTECTED_PREFIX = "/v1/"
STREAM_PATH = "/v1/stream"
CORS_HEADERS = "Authorization, Content-Type"


def _token_of(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if request.path == STREAM_PATH:
        return request.query.get("token")
    return None


def token_matches(presented: str | None, expected: str) -> bool:
    if not presented or not expected:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def origin_allowed(origin: str | None, host: str | None, allowed: tuple[str, ...]) -> bool:
    """No Origin (not a browser): allowed. Otherwise the same host:port as the request, or listed."""
    if origin is None:
        return True
    origin = origin.strip().rstrip("/").lower()
    listed = {o.strip().rstrip("/").lower() for o in allowed}
    if "*" in listed or origin in listed:
        return True
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return False
    return bool(netloc) and bool(host) and netloc == host.strip().lower()


def _cors_origin(request: web.Request, allowed: tuple[str, ...]) -> str | None:
    origin = request.headers.get("Origin")
    if origin is None or not allowed:
        return None
    listed = {o.strip().rstrip("/").lower() for o in allowed}
    return origin if ("*" in listed or origin.strip().rstrip("/").lower() in listed) else None


def _route_name(request: web.Request) -> str:
    route = request.match_info.route
    resource = getattr(route, "resource", None)
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def errors_middleware(request: web.Request, handler):
    """Every error is JSON `{"error", "field", "problem"}`; an unexpected exception is a logged 500."""
    try:
        return await handler(request)
    except web.HTTPException as http:
        if http.status < 400:
            raise
        headers = {k: v for k, v in http.headers.items() if k in ("Allow", "Retry-After", "WWW-Authenticate")}
        problem = http.text if http.text and http.text != f"{http.status}: {http.reason}" else None
        if http.status == 413:
            problem = f"the body is larger than the limit of {request.app[BRIDGE].max_body_bytes} bytes"
        return error_response(http.status, http.reason.lower(), problem, headers=headers)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal error", "see the bridge log")


@web.middleware
async def metrics_middleware(request: web.Request, handler):
    metrics = request.app[BRIDGE].metrics
    route = _route_name(request)
    start = time.perf_counter()
    response = await handler(request)
    if route != STREAM_PATH:  # a websocket's "request" lasts as long as the connection
        metrics.request_seconds.labels(route).observe(time.perf_counter() - start)
    metrics.requests.labels(request.method, route, str(response.status)).inc()
    return response


@web.middleware
async def security_middleware(request: web.Request, handler):
    """CORS for listed origins, bearer-token auth under /v1/, the Origin check on the websocket."""
    bridge: Bridge = request.app[BRIDGE]
    settings = bridge.settings
    cors = _cors_origin(request, settings.allowed_origins)
    if request.method == "OPTIONS" and request.headers.get("Access-Control-Request-Method"):
        if cors is None:
            return error_response(403, "origin not allowed", "add it to ALGO_ALLOWED_ORIGINS")
        return web.Response(status=204, headers={
            "Access-Control-Allow-Origin": cors, "Vary": "Origin", "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": CORS_HEADERS, "Access-Control-Max-Age": "600"})
    if request.path.startswith(PROTECTED_PREFIX):
        if not settings.api_token:
            return error_response(503, "no API token configured",
                                  "set ALGO_API_TOKEN for the bridge (`algo bridge` generates one when unset)")
        if not token_matches(_token_of(request), settings.api_token):
            if request.path == STREAM_PATH:
                bridge.metrics.ws_refused.labels("auth").inc()
            return error_response(401, "unauthorized",
                                  "send Authorization: Bearer <ALGO_API_TOKEN>"
                                  + (" (or ?token= on the websocket)" if request.path == STREAM_PATH else ""),
                                  headers={"WWW-Authenticate": 'Bearer realm="algo"'})
        if request.path == STREAM_PATH and not origin_allowed(request.headers.get("Origin"), request.host,
                                                               settings.allowed_origins):
            bridge.metrics.ws_refused.labels("origin").inc()
            return error_response(403, "origin not allowed",
                                  f"{request.headers.get('Origin')[:100]} is neither this bridge's origin nor in "
                                  "ALGO_ALLOWED_ORIGINS")
    unknown = unknown_query_parameter(request)
    if unknown is not None:
        return error_response(400, "unknown query parameter", "not a parameter of this route (see /openapi.json)",
                              field=unknown[:100])
    response = await handler(request)
    if cors is not None and not getattr(response, "prepared", False):
        response.headers["Access-Control-Allow-Origin"] = cors
        response.headers["Vary"] = "Origin"
    return response


TOKEN_IN_URL = re.compile(r"(?i)((?:^|[?&;])token=)[^&;#\s\"]*")


def scrub_token(text: str) -> str:
    """`...?token=abc&x=1` -> `...?token=***&x=1`: URLs with the API token are safe to log."""
    return TOKEN_IN_URL.sub(r"\1***", text)


class TokenScrubbingAccessLogger(AccessLogger):
    """aiohttp's access log without token values: the websocket and the dashboard take `?token=`,
    and the dashboard's URL comes back in the Referer of what the page loads."""

    def _format_line(self, request, response, time):
        return [(key, scrub_token(value) if isinstance(value, str) else value)
                for key, value in super()._format_line(request, response, time)]


def access_log_options(enabled: bool) -> dict:
    """What run_app / AppRunner take for the access log (off unless asked for; never with tokens)."""
    return {"access_log": ACCESS_LOG if enabled else None, "access_log_class": TokenScrubbingAccessLogger}


def create_app(
    settings: Settings,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    ring_size: int = 1000,
    queue_size: int = 1000,
    heartbeat_s: float = 15.0,
    max_clients: int = 10_000,
    kafka: bool = True,
    publisher: Publisher | None = None,
    store: Store | None = None,
    hub: StreamHub | None = None,
) -> web.Application:
    """The bridge as an aiohttp application. Kafka, the registry and Postgres are reached lazily, so the
    app starts (and /healthz answers) with its dependencies down; /readyz tells. `kafka=False` runs the
    hub without a consumer (tests feed it with hub.emit)."""
    metrics = BridgeMetrics(LivenessTracker(settings.stall_after_s, settings.lag_alarm_messages,
                                            settings.lag_alarm_after_s))
    bridge = Bridge(
        settings=settings, metrics=metrics,
        hub=hub or StreamHub(settings, metrics=metrics, ring_size=ring_size, queue_size=queue_size,
                             heartbeat_s=heartbeat_s, max_clients=max_clients, kafka=kafka),
        publisher=publisher or Publisher(settings), store=store or Store(settings), max_body_bytes=max_body_bytes)
    if bridge.hub.metrics is None:
        bridge.hub.metrics = metrics
    # request lines up to 64 KiB reach the handlers (and get JSON answers) rather than aiohttp's plain 400
    app = web.Application(client_max_size=max_body_bytes, handler_args={"max_line_size": 65536},
                          middlewares=[metrics_middleware, errors_middleware, security_middleware])
    app[BRIDGE] = bridge
    add_routes(app)

    async def lifecycle(app: web.Application):
        await bridge.store.open()
        await bridge.hub.start()
        yield
        await bridge.hub.stop()
        await bridge.publisher.close()
        await bridge.store.close()

    app.cleanup_ctx.append(lifecycle)
    return app


def with_token(settings: Settings) -> tuple[Settings, bool]:
    """The settings with an API token: the configured one, or a new random one (True when generated)."""
    if settings.api_token:
        return settings, False
    return dataclasses.replace(settings, api_token=secrets.token_urlsafe(24)), True


def dashboard_url(settings: Settings, host: str | None = None, port: int | None = None, *,
                  show_token: bool = True) -> str:
    """The dashboard's URL; with show_token=False the token stays out (a placeholder names the variable)."""
    host = host or settings.bridge_host
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    token = settings.api_token if show_token else "$ALGO_API_TOKEN"
    return f"http://{shown}:{port or settings.bridge_port}/?token={token}"


def run_bridge(settings: Settings, *, host: str | None = None, port: int | None = None,
               max_body_bytes: int = MAX_BODY_BYTES, queue_size: int = 1000, ring_size: int = 1000,
               access_log: bool = False, echo=print) -> None:
    """Serves the bridge until interrupted. Without ALGO_API_TOKEN a random token is generated and printed."""
    settings, generated = with_token(settings)
    host = host or settings.bridge_host
    port = port or settings.bridge_port
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    app = create_app(settings, max_body_bytes=max_body_bytes, queue_size=queue_size, ring_size=ring_size)
    if generated:
        echo("bridge: ALGO_API_TOKEN is not set; generated a token for this run:")
        echo(f"  {settings.api_token}")
    # a configured token is the user's already: it stays out of the output (often a log file)
    echo(f"bridge: dashboard {dashboard_url(settings, host, port, show_token=generated)}")
    echo(f"bridge: REST http://{host}:{port}/v1/ (OpenAPI at /openapi.json), websocket ws://{host}:{port}{STREAM_PATH}")
    try:
        web.run_app(app, host=host, port=port, print=None, handle_signals=True, shutdown_timeout=5,
                    **access_log_options(access_log))
    except OSError as error:
        raise AlgoError(f"cannot listen on {host}:{port}: {error.strerror or error}; is another bridge running? "
                        "(choose another with --port or BRIDGE_PORT)") from None
