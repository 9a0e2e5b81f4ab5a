"""Quant agent: market.bars -> agent.signals with the PPO policy (streams.quant.vote, streams.quant.model).

The served policy is the most recently registered version (or QUANT_MODEL_VERSION); a timer polls the
registry every QUANT_MODEL_POLL_S seconds and swaps in a newer version without a restart. Until
a version exists the agent keeps its windows warm and publishes nothing.
"""
from __future__ import annotations

import asyncio

from streams.quant import model as quant_model
from streams.app import (app, avro_topic, dead_letter_on_failure, decode_bar_or_dead_letter, events_without_gaps, log,
    raw_topic, settings)
from streams.errors import AlgoError
from streams.market.bars import to_micros
from streams.quant.features import FeatureSpec
from streams.quant.vote import advance, revote, vote_on_bar

AGENT = "quant"
bars_topic = raw_topic("market.bars")
signals_topic = avro_topic("agent.signals")
symbol_to_quant_state = app.Table("symbol_to_quant_state", partitions=settings.topic_partitions)


class ServedPolicy:
    """The policy in use; swapped whole, so a bar is always scored by one version."""

    def __init__(self) -> None:
        self.policy: quant_model.QuantPolicy | None = None
        self.skipped = 0
        self.asked: asyncio.Event | None = None  # set once the registry has answered the first time

    async def first_answer(self) -> None:
        """Waits until the first look at the registry is over (a bar is never skipped while the model loads)."""
        if self.asked is None:
            self.asked = asyncio.Event()
            await self.refresh()
        await self.asked.wait()

    async def refresh(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            if settings.quant_model_version:
                if self.policy is None:
                    self._swap(await loop.run_in_executor(None, quant_model.fetch, settings,
                                                          settings.quant_model_version))
                return
            current = await loop.run_in_executor(None, quant_model.current_version, settings)
            if current is not None and (self.policy is None or current != self.policy.version):
                self._swap(await loop.run_in_executor(None, quant_model.fetch, settings, current))
        except AlgoError as error:  # the registry is down or a row is unusable: keep serving what we have
            log.warning("quant: model registry: %s", error)
        finally:
            if self.asked is not None:
                self.asked.set()

    def _swap(self, policy: quant_model.QuantPolicy | None) -> None:
        if policy is None:
            return
        previous = self.policy.version if self.policy else "nothing"
        self.policy = policy
        log.info("quant: serving model %s (was %s)", policy.version, previous)


served = ServedPolicy()


@app.task
async def load_model() -> None:
    await served.first_answer()


@app.timer(interval=settings.quant_model_poll_s)
async def poll_registry() -> None:
    await served.refresh()


@app.agent(bars_topic, name="quant_vote")
async def quant_vote(stream):
    async for event in events_without_gaps(stream, AGENT):
        async with dead_letter_on_failure(event, AGENT):
            bar = await decode_bar_or_dead_letter(event, AGENT)
            if bar is None:
                continue
            await served.first_answer()
            policy = served.policy
            if policy is None:  # keep the window warm, publish nothing
                state = advance(symbol_to_quant_state.get(bar["symbol"]), to_micros(bar["ts"]), bar["close"],
                                FeatureSpec())
                if state is not None:
                    symbol_to_quant_state[bar["symbol"]] = state
                if served.skipped % 1000 == 0:
                    log.warning("quant: no model registered yet (run `algo quant train`); bar not scored")
                served.skipped += 1
                continue
            before = symbol_to_quant_state.get(bar["symbol"])
            if before is not None and to_micros(bar["ts"]) <= before["last_bar_us"]:  # seen: vote again, the same
                signal = revote(before, bar, policy)
                if signal is None:
                    log.warning("quant: %s bar %s is older than the %d kept: not voted on again", bar["symbol"],
                                bar["ts"], len(before.get("bars_us", [])))
                else:
                    await signals_topic.send(key=bar["symbol"].encode(), value=signal)
                continue
            state, signal = vote_on_bar(before, bar, policy)
            if state is None:
                continue
            symbol_to_quant_state[bar["symbol"]] = state
            await signals_topic.send(key=bar["symbol"].encode(), value=signal)
