"""`algo bridge`: the click command (registered in ops.cli)."""
from __future__ import annotations

import dataclasses

import click


@click.command()
@click.option("--host", default=None, help="Interface to listen on (default BRIDGE_HOST, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default BRIDGE_PORT, 8000).")
@click.option("--max-body-bytes", type=click.IntRange(min=1024), default=None,
              help="POST bodies larger than this get 413 (default 1 MiB).")
@click.option("--queue-size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Events a websocket client may fall behind before it is dropped (close code 1013).")
@click.option("--ring-size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Recent events kept per topic for clients that resume with since.")
@click.option("--access-log", is_flag=True, help="Log every HTTP request.")
def bridge(host: str | None, port: int | None, max_body_bytes: int | None, queue_size: int, ring_size: int,
           access_log: bool) -> None:
    """Serve the REST API, the websocket stream and the dashboard until stopped.

    Everything under /v1/ needs `Authorization: Bearer $ALGO_API_TOKEN` (the websocket also takes
    ?token=); without ALGO_API_TOKEN a random token is generated and printed with the dashboard URL.
    """
    from streams.bridge.server import MAX_BODY_BYTES, run_bridge
    from streams.settings import get_settings

    settings = get_settings()
    # the secure profile's bridge connects as principal `bridge` unless ALGO_PRINCIPAL says otherwise
    settings = dataclasses.replace(settings, principal=settings.principal or "bridge")
    run_bridge(settings, host=host, port=port, max_body_bytes=max_body_bytes or MAX_BODY_BYTES,
               queue_size=queue_size, ring_size=ring_size, access_log=access_log, echo=lambda line: click.echo(line))
