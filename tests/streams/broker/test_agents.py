"""streams/broker/agents.py without Kafka: a stale order waits for persistence to store its next bar."""
from __future__ import annotations

import asyncio

import streams.broker.agents as broker

ORDER = {"symbol": "AAPL", "ts": "2005-01-03T00:00:00+00:00"}
BAR = {"ts_us": 1_104_796_800_000_000, "open": 10.0, "close": 10.5}


def test_a_stale_orders_next_bar_is_waited_for_until_persistence_stores_it(monkeypatch):
    answers = [None, None, BAR]

    async def vault_behind(order):
        assert order is ORDER
        return answers.pop(0)

    monkeypatch.setattr(broker, "next_bar_in_vault", vault_behind)
    real_sleep = asyncio.sleep
    monkeypatch.setattr(broker.asyncio, "sleep", lambda _s: real_sleep(0))  # no half-second waits here
    assert asyncio.run(broker.next_bar_once_persisted(ORDER)) == BAR
    assert answers == []


def test_a_stale_order_whose_bar_never_lands_is_given_up_after_the_catch_up_time(monkeypatch):
    calls = []

    async def never(order):
        calls.append(order)
        return None

    monkeypatch.setattr(broker, "next_bar_in_vault", never)
    assert asyncio.run(broker.next_bar_once_persisted(ORDER, catch_up_s=0.0)) is None
    assert len(calls) == 1
