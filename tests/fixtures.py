"""Shared builders for records of every schema, valid by default; override fields per test."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

T0 = datetime(2001, 2, 5, 14, 30, tzinfo=timezone.utc)


def tick(**overrides) -> dict:
    record = {"symbol": "AAPL", "ts": T0, "price": 100.0, "size": 10.0, "source": "test", "seq": 0}
    record.update(overrides)
    return record


def bar(**overrides) -> dict:
    record = {"symbol": "AAPL", "interval": "1d", "ts": T0.replace(hour=0, minute=0), "open": 100.0, "high": 105.0,
              "low": 99.0, "close": 104.0, "volume": 1000.0, "tick_count": 4}
    record.update(overrides)
    return record


def signal(**overrides) -> dict:
    record = {"signal_id": str(uuid.uuid4()), "agent": "technical", "symbol": "AAPL", "ts": T0, "action": "BUY",
              "confidence": 0.7, "rationale": "fast SMA above slow", "model_version": "sma-10-50",
              "input_refs": ["bar:AAPL:1d:2001-02-05"]}
    record.update(overrides)
    return record


def decision(**overrides) -> dict:
    record = {"decision_id": str(uuid.uuid4()), "symbol": "AAPL", "ts": T0, "action": "BUY", "target_position": 0.5,
              "agreement": 0.8, "rationale": "2 of 2 agents agree",
              "votes": [{"signal_id": "s1", "agent": "technical", "action": "BUY", "confidence": 0.7, "weight": 1.0}]}
    record.update(overrides)
    return record


def verdict(**overrides) -> dict:
    record = {"verdict_id": str(uuid.uuid4()), "decision_id": str(uuid.uuid4()), "symbol": "AAPL", "ts": T0,
              "verdict": "APPROVE", "requested_quantity": 100.0, "approved_quantity": 100.0, "reason_codes": [],
              "limits_checked": [{"name": "position_limit", "limit": 25_000.0, "value": 10_000.0, "passed": True}]}
    record.update(overrides)
    return record


def agent_log(**overrides) -> dict:
    record = {"log_id": str(uuid.uuid4()), "agent": "bars", "ts": T0, "level": "INFO", "message": "hello",
              "context": {"k": "v"}}
    record.update(overrides)
    return record


def news_item(**overrides) -> dict:
    record = {"id": str(uuid.uuid4()), "ts": T0, "source": "wire", "headline": "Apple beats estimates",
              "body": "", "symbols": ["AAPL"], "url": None}
    record.update(overrides)
    return record


def fill(**overrides) -> dict:
    record = {"fill_id": str(uuid.uuid4()), "order_id": str(uuid.uuid4()), "account": "paper", "symbol": "AAPL",
              "ts": T0, "side": "BUY", "quantity": 100.0, "price": 100.0, "fee": 1.0}
    record.update(overrides)
    return record


def backtest_request(**overrides) -> dict:
    record = {"request_id": str(uuid.uuid4()), "ts": T0, "symbol": "AAPL", "strategy": "sma",
              "params": {"fast": 10.0, "slow": 50.0}, "fee_bps": 1.0, "slippage_bps": 1.0,
              "initial_cash": 100_000.0, "start": None, "end": None}
    record.update(overrides)
    return record


def ohlcv(n: int = 400, seed: int = 0, drift: float = 0.0003, vol: float = 0.012, start: str = "2005-01-03"):
    """A random-walk daily OHLCV frame (date, open, high, low, close, volume) with consistent high/low."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(drift + vol * rng.standard_normal(n)))
    open_ = close * np.exp(0.3 * vol * rng.standard_normal(n))
    high = np.maximum(open_, close) * (1 + 0.004 * rng.random(n))
    low = np.minimum(open_, close) * (1 - 0.004 * rng.random(n))
    dates = pd.bdate_range(start, periods=n)
    return pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "open": open_, "high": high, "low": low, "close": close,
                         "volume": rng.integers(1_000, 100_000, n).astype(float)})


def with_small_policy(settings, label: str):
    """`settings` under a model namespace of its own holding one small PPO policy (256 steps on the
    bundled S&P 500), for tests that run the quant agent."""
    import dataclasses

    from streams.market.datasets import load_dataset
    from streams.quant.train import train_and_register

    namespaced = dataclasses.replace(settings, model_namespace=f"{settings.app_id}-{label}")
    train_and_register(namespaced, load_dataset("sp500"), f"test:{label}", timesteps=256, seed=0)
    return namespaced
