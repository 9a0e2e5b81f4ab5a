"""Plain dataclasses of the risk_core Python API (no numpy-free logic lives here)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

STRATEGIES = ("target", "sma", "momentum", "breakout")  # index = the C++ Strategy enum
DIRECTIONS = ("long_short", "long", "short")            # index = the C++ Direction enum
SIZINGS = ("fixed", "vol_target")                       # index = the C++ Sizing enum
DECISIONS = ("approve", "resize", "reject")             # index = the C++ Decision enum
# bit i of Verdict.reasons in C++ -> name
REASONS = (
    "position_limit",
    "gross_exposure",
    "net_exposure",
    "notional_cap",
    "rate_limit",
    "daily_loss",
    "drawdown",
    "var_limit",
    "below_lot",
)

# numpy view of the C++ Trade struct (same field order and layout)
TRADE_DTYPE = np.dtype(
    [
        ("entry_bar", np.int64),
        ("exit_bar", np.int64),
        ("direction", np.int64),
        ("closed", np.int64),
        ("quantity", np.float64),
        ("entry_price", np.float64),
        ("exit_price", np.float64),
        ("pnl", np.float64),
        ("return_pct", np.float64),
        ("fees", np.float64),
    ]
)

STAT_FIELDS = (
    "final_equity",
    "total_return",
    "annualized_return",
    "volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "max_drawdown_duration",
    "turnover",
    "hit_rate",
    "num_trades",
    "num_fills",
    "total_fees",
    "exposure",
)


@dataclass(frozen=True)
class BacktestConfig:
    """Everything but the data. See risk_core/README.md for the execution model.

    strategy: "sma" (fast/slow crossover), "momentum" (sign of close[t] - close[t-lookback]),
    "breakout" (Donchian channel of `lookback` bars) or "target" (a caller's series of signed
    fractions of equity). direction: "long", "short" or "long_short". sizing: "fixed" (weight =
    signal * fraction) or "vol_target" (weight = signal * min(max_leverage, target_vol /
    realised vol of the last vol_window returns)).
    """

    strategy: str = "sma"
    fast: int = 10
    slow: int = 50
    lookback: int = 20
    direction: str = "long"
    sizing: str = "fixed"
    fraction: float = 1.0
    target_vol: float = 0.10
    vol_window: int = 20
    max_leverage: float = 1.0
    fee_bps: float = 0.0
    slippage_bps: float = 0.0
    initial_capital: float = 100_000.0
    lot_size: float = 0.0
    periods_per_year: float = 252.0


@dataclass(frozen=True)
class BacktestStats:
    final_equity: float
    total_return: float
    annualized_return: float
    volatility: float
    sharpe: float
    sortino: float
    max_drawdown: float
    max_drawdown_duration: int
    turnover: float
    hit_rate: float
    num_trades: int
    num_fills: int
    total_fees: float
    exposure: float

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in STAT_FIELDS}


@dataclass(frozen=True)
class Trade:
    entry_bar: int
    exit_bar: int
    direction: int
    closed: bool
    quantity: float
    entry_price: float
    exit_price: float
    pnl: float
    return_pct: float
    fees: float


@dataclass(frozen=True)
class BacktestResult:
    """equity and positions: one value per bar (at the close); trades: a numpy structured array
    (TRADE_DTYPE), see trade_list() for dataclasses."""

    stats: BacktestStats
    equity: np.ndarray | None
    positions: np.ndarray | None
    trades: np.ndarray | None
    config: BacktestConfig

    def trade_list(self) -> list[Trade]:
        if self.trades is None:
            return []
        return [
            Trade(int(t["entry_bar"]), int(t["exit_bar"]), int(t["direction"]), bool(t["closed"]),
                  float(t["quantity"]), float(t["entry_price"]), float(t["exit_price"]), float(t["pnl"]),
                  float(t["return_pct"]), float(t["fees"]))
            for t in self.trades
        ]


@dataclass(frozen=True)
class SweepResult:
    """stats[name] is an array of shape (len(symbols), len(params))."""

    symbols: tuple[str, ...]
    params: np.ndarray  # (m, 2) int: (fast, slow) for sma, (lookback, 0) otherwise
    stats: dict[str, np.ndarray]
    config: BacktestConfig

    def best(self, metric: str = "sharpe") -> list[tuple[str, tuple[int, int], float]]:
        """Per symbol: (symbol, params, value) of the parameter pair with the highest metric."""
        values = self.stats[metric]
        out = []
        for i, symbol in enumerate(self.symbols):
            j = int(np.argmax(values[i]))
            out.append((symbol, (int(self.params[j, 0]), int(self.params[j, 1])), float(values[i, j])))
        return out

    def to_frame(self):
        import pandas as pd

        rows = []
        for i, symbol in enumerate(self.symbols):
            for j in range(len(self.params)):
                row = {"symbol": symbol, "p1": int(self.params[j, 0]), "p2": int(self.params[j, 1])}
                row.update({name: self.stats[name][i, j].item() for name in STAT_FIELDS})
                rows.append(row)
        return pd.DataFrame(rows)


@dataclass(frozen=True)
class Drawdown:
    series: np.ndarray  # 1 - equity / running peak
    max_drawdown: float
    max_duration: int
    peak_index: int
    trough_index: int


@dataclass
class RiskLimits:
    """Pre-trade limits; math.inf (the default) turns a limit off.

    Exposures are multiples of equity, daily loss / drawdown / VaR fractions of equity.
    """

    max_position_notional: float = math.inf
    symbol_position_notional: dict[str, float] = field(default_factory=dict)
    max_gross_exposure: float = math.inf
    max_net_exposure: float = math.inf
    max_order_notional: float = math.inf
    max_orders_per_window: int | None = None  # None: no rate limit
    rate_window_seconds: float = 1.0
    max_daily_loss: float = math.inf
    max_drawdown: float = math.inf
    max_var: float = math.inf
    var_confidence: float = 0.99
    lot_size: float = 0.0


@dataclass(frozen=True)
class Position:
    symbol: str
    quantity: float  # signed units
    price: float  # mark
    volatility: float = 0.0  # stdev of per-period returns, for the VaR limit


@dataclass
class Portfolio:
    cash: float
    positions: list[Position] = field(default_factory=list)
    start_of_day_equity: float = 0.0  # <= 0: daily-loss kill switch off
    peak_equity: float = 0.0  # <= 0: drawdown kill switch off
    order_timestamps: list[float] = field(default_factory=list)  # seconds, orders already sent

    @property
    def equity(self) -> float:
        return self.cash + sum(p.quantity * p.price for p in self.positions)


@dataclass(frozen=True)
class Order:
    symbol: str
    side: int  # +1 buy, -1 sell ("buy"/"sell" accepted)
    quantity: float  # > 0
    price: float
    timestamp: float = 0.0
    volatility: float | None = None  # None: the position's


@dataclass(frozen=True)
class Verdict:
    decision: str  # "approve" | "resize" | "reject"
    quantity: float  # approved quantity; 0 when rejected
    reasons: tuple[str, ...]  # the limits that bound or blocked the order
    equity: float
    gross_exposure: float  # after the approved quantity, multiple of equity
    net_exposure: float
    var: float  # undiversified parametric VaR after the approved quantity, fraction of equity

    @property
    def approved(self) -> bool:
        return self.decision != "reject"
