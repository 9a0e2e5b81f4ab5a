"""A Faust agent built like the project's agents (streams.app: the same app settings, raw topics,
decode_or_dead_letter, an Avro codec, a Faust topic's send, one event at a time), doing decode ->
transform -> encode -> produce from market.ticks to the raw topic bench.echo (pipeline.py creates it); benchmarks/pipeline.py compares it with a
plain confluent-kafka loop doing the same work. Run it as a worker:

    .venv/bin/python benchmarks/faust_echo.py   (ALGO_APP_ID names its group: <app id>-echo)
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.settings import configure  # noqa: E402

configure(worker="echo")

from faust import Worker  # noqa: E402

from streams.app import app, codecs, decode_or_dead_letter, raw_topic  # noqa: E402

ECHO_TOPIC = "bench.echo"
ticks = raw_topic("market.ticks")
echo = app.topic(ECHO_TOPIC, key_serializer="raw", value_serializer="raw", partitions=3)


def transform(tick: dict) -> dict:
    """The work both loops do per message: a little arithmetic on the record."""
    return {**tick, "price": round(tick["price"] * 1.0001, 6), "size": tick["size"] + 1.0}


@app.agent(ticks, name="echo")
async def echo_ticks(stream):
    codec = codecs.for_topic("market.ticks")
    async for event in stream.events():
        tick = await decode_or_dead_letter(event, "echo")
        if tick is not None:
            await echo.send(key=event.message.key, value=codec.encode(transform(tick)))


if __name__ == "__main__":
    # not WARNING: below INFO Faust shows a spinner, which sets the root logger to DEBUG (a profile found
    # 9% of the time in logging)
    Worker(app, loglevel="info").execute_from_commandline()
