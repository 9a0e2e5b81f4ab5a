"""Memory agent ("the optimizer"): cache.access -> per-key features (streams.memory.features.KeyTable);
market.bars -> each symbol's volatility; a timer -> tiering rounds (streams.memory.tierer): above the
high watermark of Redis's maxmemory, the learned eviction policy scores candidates in batches and
the store demotes (or drops) the victims until used memory is under the low watermark. Each round's
decisions go to agent.logs as one AgentLog (and so to Postgres agent_logs and the dashboard), with a
periodic "stats" AgentLog of the hit ratio and counters; Prometheus metrics on MEMORY_METRICS_PORT.

State lives in the process (numpy columns, not a Faust table): after a restart the agent learns the
keys again from the access stream, and the keys it has not seen yet are found by RANDOMKEY probes
(idle at least since the agent started, so first in line for demotion). Redis or Postgres down: the
round waits (streams.outages) and the access stream keeps being read.
"""
from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis
from prometheus_client import start_http_server

from streams.app import (app, avro_topic, dead_letter_on_failure, decode_bar_or_dead_letter, decode_or_dead_letter,
    events_without_gaps, log, raw_topic, settings)
from streams.errors import ModelError
from streams.memory.model import EvictionPolicy
from streams.memory.store import TieredStore
from streams.memory.tierer import AGENT, MemoryMetrics, Tierer, stats_record
from streams.outages import postgres_errors, until_available

memory_settings = settings.memory
POLICY_RETRY_S = 30.0
access_topic = raw_topic("cache.access")
bars_topic = raw_topic("market.bars")
logs_topic = avro_topic("agent.logs")
metrics = MemoryMetrics()
# the one Tierer of this worker, made at start-up (it holds the store's and Redis's connections)
worker_tierer: dict[str, Tierer] = {}
_last_stats = {"at": 0.0, "seen": None}


def _tierer() -> Tierer | None:
    return worker_tierer.get(AGENT)


def load_policy() -> EvictionPolicy:
    """MEMORY_MODEL_DIR when set; else the version registered current in model_versions (this
    namespace); else the policy shipped in the package."""
    if not memory_settings.model_dir:
        with postgres_errors():
            registered = EvictionPolicy.load_registered(settings)
        if registered is not None:
            return registered
    return EvictionPolicy.shipped(settings)


@app.task
async def start_tiering() -> None:
    while True:
        try:
            policy = await until_available(asyncio.to_thread, load_policy, what="memory agent loading its policy")
            break
        except ModelError as error:  # loud, but not fatal for a worker that runs other agents too (`all`)
            log.error("memory: no usable eviction policy (%s); no tiering until one is shipped or registered "
                      "(`algo memory train`); trying again in %.0f s", error, POLICY_RETRY_S)
            await asyncio.sleep(POLICY_RETRY_S)
    store = TieredStore(settings, agent=AGENT)  # no access log: the agent's demotions are not reads
    await until_available(store.open, what="memory agent opening the store")
    client = aioredis.from_url(settings.redis_client_url, socket_timeout=10, socket_connect_timeout=10)
    worker_tierer[AGENT] = Tierer(settings, store, client, policy, metrics=metrics)
    if memory_settings.metrics_port:
        try:
            start_http_server(memory_settings.metrics_port, addr=memory_settings.metrics_host,
                              registry=metrics.registry)
        except OSError as error:  # a second worker on the same machine: the first one serves metrics
            log.warning("memory: metrics not served on %s:%s: %s", memory_settings.metrics_host,
                        memory_settings.metrics_port, error)
    log.info("memory: policy %s, watermarks %.2f/%.2f of %s, metrics on :%s", policy.version,
             memory_settings.high_watermark, memory_settings.low_watermark, memory_settings.redis_maxmemory,
             memory_settings.metrics_port or "off")


@app.agent(access_topic, name="memory_observe_accesses")
async def observe_accesses(stream):
    async for event in events_without_gaps(stream, AGENT):
        async with dead_letter_on_failure(event, AGENT):
            record = await decode_or_dead_letter(event, AGENT)
            tierer = _tierer()
            if record is None or tierer is None:  # not started yet: the first round finds these by RANDOMKEY
                continue
            tierer.observe(record)


@app.agent(bars_topic, name="memory_track_volatility")
async def track_volatility(stream):
    async for event in events_without_gaps(stream, AGENT):
        async with dead_letter_on_failure(event, AGENT):
            bar = await decode_bar_or_dead_letter(event, AGENT)
            tierer = _tierer()
            if bar is None or tierer is None:
                continue
            tierer.state.volatility.update(bar["symbol"], bar["close"])


@app.timer(interval=memory_settings.check_interval_s)
async def tier() -> None:
    tierer = _tierer()
    if tierer is None:
        return
    try:
        report = await until_available(tierer.round, what="memory tiering round")
    except Exception:  # noqa: BLE001 - a round that fails must not end the worker: the next tick tries again
        log.exception("memory: tiering round failed")
        return
    if report is not None and report.decisions:
        await logs_topic.send(key=AGENT.encode(), value=report.log_record(tierer.stats()))
        log.info("memory: %d demoted, %d dropped in %.3f s; used %d -> %d of %d bytes", report.count("demote"),
                 report.count("drop"), report.seconds, report.used_before, report.used_after, report.maximum)
    now = time.monotonic()
    if now - _last_stats["at"] >= memory_settings.stats_interval_s:
        seen = tierer.stats()
        if seen != _last_stats["seen"]:  # only when something happened since the last one
            used, maximum = await until_available(tierer.memory, what="memory agent reading Redis")
            await logs_topic.send(key=AGENT.encode(),
                                  value=stats_record(tierer.state, tierer.totals, used, maximum, tierer.policy.version))
            _last_stats["seen"] = seen
        _last_stats["at"] = now
