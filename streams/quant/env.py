"""The Quant agent's training ground: a gymnasium env over historical bars.

One step = one bar. At bar t the policy sees the features of closes up to t (streams.quant.features)
and its own position, and picks a target: short, flat or long (`EnvConfig.positions` x `fraction`
of equity). A changed target is filled at bar t+1's open with risk_core's execution model
(PaperAccount mirrors risk_core's backtester: slippage on the fill price, the fee on the traded
notional, all-in sizing that leaves room for the fee), and the step ends at bar t+1's close.

Reward (documented risk penalty): with r = equity[t+1] / equity[t] - 1 and d = |change of the
target| (0, 1 or 2 units of `fraction`),
    reward = reward_scale * (log(1 + r) - risk_penalty * r**2 - trade_penalty_bps / 1e4 * d)
log(1 + r) is the growth rate (it already charges r**2 / 2 for variance); risk_penalty adds more
variance aversion, so a position must earn its volatility. Fees and slippage enter through
equity; trade_penalty_bps is a training-only charge on top (equity never sees it): the real costs
of a daily flip are a few basis points, far below the noise of one day's return, and a policy
trained without it learns to trade on that noise (the first evaluation turned its book over ~200
times a year).

Episodes start flat at a random bar of a random series (weighted by length) and last
`episode_length` bars or until the data ends (truncated); equity at or below zero terminates.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import gymnasium as gym
import numpy as np

from streams.errors import ModelError
from streams.quant.features import FeatureSpec, feature_matrix, observation


@dataclass(frozen=True)
class EnvConfig:
    fee_bps: float = 1.0          # the paper broker's defaults (BROKER_FEE_BPS, BROKER_SLIPPAGE_BPS)
    slippage_bps: float = 1.0
    fraction: float = 1.0         # |target| as a fraction of equity
    initial_capital: float = 100_000.0
    risk_penalty: float = 1.0
    trade_penalty_bps: float = 10.0
    reward_scale: float = 100.0
    episode_length: int = 252
    positions: tuple[float, ...] = (-1.0, 0.0, 1.0)  # action index -> target sign

    def as_dict(self) -> dict:
        return {**asdict(self), "positions": list(self.positions)}

    @classmethod
    def from_dict(cls, values: dict) -> "EnvConfig":
        kept = {k: values[k] for k in cls.__dataclass_fields__ if k in values}
        if "positions" in kept:
            kept["positions"] = tuple(float(p) for p in kept["positions"])
        return cls(**kept)

    def backtest_params(self) -> dict:
        """The same costs and sizing for risk_core.backtest(target=...)."""
        return {"fee_bps": self.fee_bps, "slippage_bps": self.slippage_bps, "initial_capital": self.initial_capital,
                "direction": "long_short", "sizing": "fixed", "fraction": 1.0, "lot_size": 0.0}


@dataclass
class PaperAccount:
    """Cash and units under risk_core's backtester rules (risk_core/README.md, execution model)."""

    cash: float
    fee_bps: float
    slippage_bps: float
    units: float = 0.0
    traded: float = 0.0
    fees: float = 0.0
    fills: int = 0

    def equity(self, price: float) -> float:
        return self.cash + self.units * price

    def rebalance(self, weight: float, open_price: float) -> None:
        """Move to `weight` x equity at this open, as the backtester fills a changed signal."""
        fee_rate, slip = self.fee_bps / 1e4, self.slippage_bps / 1e4
        equity = self.cash + self.units * open_price
        buy_price = open_price * (1.0 + slip)
        wanted = weight * equity / (buy_price * (1.0 + fee_rate))
        price = buy_price
        if not wanted > self.units:
            price = open_price * (1.0 - slip)
            wanted = weight * equity / (price * (1.0 + fee_rate))
            if not wanted < self.units:
                return
        delta = wanted - self.units
        notional = abs(delta) * price
        fee = notional * fee_rate
        self.cash = self.cash - delta * price - fee
        self.units = wanted
        self.traded += notional
        self.fees += fee
        self.fills += 1


@dataclass(frozen=True)
class MarketSeries:
    """One symbol's open and close with its precomputed feature rows."""

    symbol: str
    open: np.ndarray
    close: np.ndarray
    features: np.ndarray = field(repr=False)

    @classmethod
    def build(cls, symbol: str, open_, close, spec: FeatureSpec) -> "MarketSeries":
        o, c = np.asarray(open_, dtype=np.float64), np.asarray(close, dtype=np.float64)
        if len(o) != len(c):
            raise ModelError(f"{symbol}: open and close differ in length ({len(o)} vs {len(c)})")
        if not (np.isfinite(o).all() and np.isfinite(c).all() and (o > 0).all() and (c > 0).all()):
            raise ModelError(f"{symbol}: prices must be finite and > 0")
        return cls(symbol, o, c, feature_matrix(c, spec))

    def first_decision_bar(self) -> int:
        """The first bar whose features are complete."""
        ok = np.flatnonzero(np.isfinite(self.features).all(axis=1))
        return int(ok[0]) if len(ok) else len(self.close)

    def __len__(self) -> int:
        return len(self.close)


class QuantTradingEnv(gym.Env):
    """Discrete(len(positions)) actions; Box observations (features + position), float32."""

    metadata = {"render_modes": []}

    def __init__(self, series: list[MarketSeries], spec: FeatureSpec = FeatureSpec(),
                 config: EnvConfig = EnvConfig()):
        super().__init__()
        usable = [s for s in series if len(s) - s.first_decision_bar() >= 2]
        if not usable:
            raise ModelError(f"no series has enough bars to trade: need more than {spec.warmup} bars")
        self.series, self.feature_spec, self.config = usable, spec, config
        self.action_space = gym.spaces.Discrete(len(config.positions))
        bound = np.full(spec.size, spec.clip, dtype=np.float32)
        bound[-1] = max(1.0, max(abs(p) for p in config.positions))
        self.observation_space = gym.spaces.Box(-bound, bound, dtype=np.float32)
        spans = np.array([len(s) - s.first_decision_bar() - 1 for s in usable], dtype=np.float64)
        self._series_weights = spans / spans.sum()
        self._current: MarketSeries = usable[0]
        self._t = self._end = 0
        self._account = PaperAccount(config.initial_capital, config.fee_bps, config.slippage_bps)
        self._sign = 0.0

    def _observe(self) -> np.ndarray:
        return observation(self._current.features[self._t], self._sign)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """options: {"series": index, "start": bar, "length": bars} pick a fixed window."""
        super().reset(seed=seed)
        options = options or {}
        index = options.get("series")
        if index is None:
            index = int(self.np_random.choice(len(self.series), p=self._series_weights))
        self._current = self.series[index]
        first, last = self._current.first_decision_bar(), len(self._current) - 1
        length = int(options.get("length", self.config.episode_length))
        start = options.get("start")
        if start is None:
            latest = max(first, last - length)
            start = int(self.np_random.integers(first, latest + 1))
        if not first <= start < last:
            raise ModelError(f"start bar {start} outside [{first}, {last}) for {self._current.symbol}")
        self._t, self._end = int(start), min(last, int(start) + length)
        self._account = PaperAccount(self.config.initial_capital, self.config.fee_bps, self.config.slippage_bps)
        self._sign = 0.0
        return self._observe(), {"symbol": self._current.symbol, "bar": self._t,
                                 "equity": self.config.initial_capital}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ModelError(f"action {action!r} is not in {self.action_space}")
        sign = float(self.config.positions[int(action)])
        account, series, t = self._account, self._current, self._t
        before = account.equity(series.close[t])
        change = abs(sign - self._sign) * self.config.fraction
        if sign != self._sign:  # the backtester trades only when the signal changes
            account.rebalance(sign * self.config.fraction, series.open[t + 1])
            self._sign = sign
        self._t = t + 1
        after = account.equity(series.close[self._t])
        r = after / before - 1.0 if before > 0 else -1.0
        terminated = after <= 0.0
        growth = math.log1p(max(r, -0.99))
        reward = self.config.reward_scale * (growth - self.config.risk_penalty * r * r
                                             - self.config.trade_penalty_bps / 1e4 * change)
        truncated = not terminated and self._t >= self._end
        info = {"equity": after, "units": account.units, "bar": self._t, "fees": account.fees,
                "traded": account.traded, "position": self._sign}
        return self._observe(), float(reward), bool(terminated), bool(truncated), info
