"""Analyst agent: news.items -> agent.signals (one vote per company an item names) and agent.logs (the
record of each vote: everything it depended on, for `algo analyst replay`). See streams.analyst.chain."""
from __future__ import annotations

import asyncio
import time

import torch

from streams.analyst.chain import AGENT
from streams.analyst.service import Analyst
from streams.app import (app, avro_topic, dead_letter_on_failure, decode_or_dead_letter, events_without_gaps, log,
    raw_topic, settings)
from streams.memory.store import AccessLog, TieredStore
from streams.outages import until_available

# one item at a time: one thread embeds it in ~15 ms and leaves the other core to Kafka (two threads
# contend with the other workers on a small machine: benchmarks/embedding.py)
torch.set_num_threads(1)
news_topic = raw_topic("news.items")
signals_topic = avro_topic("agent.signals")
logs_topic = avro_topic("agent.logs")
analyst = Analyst(settings)
# retrievals and embeddings are read through Redis (streams.memory): a redelivered or replayed item is a hit
memory = TieredStore(settings, agent=AGENT, access_log=AccessLog(settings, AGENT))


@app.agent(news_topic, name="analyst_vote")
async def analyst_vote(stream):
    async for event in events_without_gaps(stream, AGENT):
        async with dead_letter_on_failure(event, AGENT):
            item = await decode_or_dead_letter(event, AGENT)
            if item is None:
                continue
            started = time.perf_counter()
            if not memory.opened:
                await memory.open()
                analyst.use_memory(memory, asyncio.get_running_loop())
            analysis = await until_available(asyncio.to_thread, analyst.analyse, item,
                                             what=f"analyst on news:{item['id']}")
            for signal in analysis.signals:
                await signals_topic.send(key=signal["symbol"].encode(), value=signal)
            for record in analysis.logs:
                await logs_topic.send(key=AGENT.encode(), value=record)
            log.debug("analyst: news:%s -> %d vote(s) in %.1f ms", item["id"], len(analysis.signals),
                      (time.perf_counter() - started) * 1e3)
