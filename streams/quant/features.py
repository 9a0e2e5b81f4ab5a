"""The Quant policy's observation, from closes only, with no look-ahead.

Row t of `feature_matrix(close)` uses close[0..t] and nothing later:
  r_t        = log(close[t] / close[t-1])
  sigma_t    = stdev (ddof 1) of the last `vol_window` returns up to r_t
  returns    = r_{t-k} / sigma_t for k = 0 .. window-1 (the newest first), clipped to +-clip
  vol regime = log(stdev of the last `short_vol_window` returns / sigma_t), clipped
  trend      = log(close[t] / SMA(trend_window)[t]) / (sigma_t * sqrt(trend_window)), clipped
The observation appends the policy's own current position (-1, 0, +1). Rows before `warmup`
are NaN; every later row is finite for any positive closes. A flat stretch (old or illiquid data:
sigma_t = 0) has no scale, but every return in it is 0, so its scaled returns, vol regime and
trend are 0 ("nothing moves"); a quiet short window in a moving long one is the lowest vol regime
(-clip). Undefined rows mid-series would reach the policy as NaN logits. The serving agent calls `latest_features` on its window of closes, which runs the same
code on the last `warmup` closes, so training and serving see identical numbers (tested).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


@dataclass(frozen=True)
class FeatureSpec:
    window: int = 20
    vol_window: int = 60
    short_vol_window: int = 10
    trend_window: int = 50
    clip: float = 5.0

    @property
    def warmup(self) -> int:
        """Closes needed for the first complete row (its index is warmup - 1)."""
        return max(self.vol_window, self.window, self.short_vol_window, self.trend_window - 1) + 1

    @property
    def size(self) -> int:
        """Length of an observation (features plus the position)."""
        return self.window + 3

    def names(self) -> list[str]:
        return [f"ret_{k}" for k in range(self.window)] + ["vol_regime", "trend", "position"]

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "FeatureSpec":
        return cls(**{k: values[k] for k in cls.__dataclass_fields__ if k in values})


def _rolling_std(values: np.ndarray, window: int) -> np.ndarray:
    out = np.full(len(values), np.nan)
    if len(values) >= window:
        out[window - 1:] = sliding_window_view(values, window).std(axis=1, ddof=1)
    return out


def feature_matrix(close: np.ndarray, spec: FeatureSpec = FeatureSpec()) -> np.ndarray:
    """(len(close), spec.size - 1) features; NaN rows before spec.warmup - 1."""
    close = np.asarray(close, dtype=np.float64)
    n = len(close)
    out = np.full((n, spec.size - 1), np.nan)
    if n < 2:
        return out
    returns = np.full(n, np.nan)
    returns[1:] = np.log(close[1:] / close[:-1])
    sigma = np.full(n, np.nan)
    short = np.full(n, np.nan)
    sigma[1:] = _rolling_std(returns[1:], spec.vol_window)
    short[1:] = _rolling_std(returns[1:], spec.short_vol_window)
    flat = sigma == 0  # the last vol_window returns are all 0: so are the shorter windows inside it
    scale = np.where(flat, 1.0, sigma)
    for k in range(spec.window):
        lagged = np.full(n, np.nan)
        lagged[k:] = returns[: n - k] if k else returns
        out[:, k] = lagged / scale
    with np.errstate(divide="ignore", invalid="ignore"):
        out[:, spec.window] = np.where(flat, 0.0, np.log(short / scale))  # short == 0 alone: -inf, clipped
        sma = np.full(n, np.nan)
        if n >= spec.trend_window:
            sma[spec.trend_window - 1:] = sliding_window_view(close, spec.trend_window).mean(axis=1)
        out[:, spec.window + 1] = np.log(close / sma) / (scale * np.sqrt(spec.trend_window))
    out = np.clip(out, -spec.clip, spec.clip)  # before the NaN test: +-inf is a bound, not a hole
    out[: spec.warmup - 1] = np.nan
    out[~np.isfinite(out).all(axis=1)] = np.nan
    return out


def latest_features(closes, spec: FeatureSpec = FeatureSpec()) -> np.ndarray | None:
    """The newest row of feature_matrix for a window of closes (oldest first); None in warm-up."""
    if len(closes) < spec.warmup:
        return None
    row = feature_matrix(np.asarray(closes[-spec.warmup:], dtype=np.float64), spec)[-1]
    return row if np.isfinite(row).all() else None


def observation(features: np.ndarray, position: float) -> np.ndarray:
    return np.append(features, float(position)).astype(np.float32)
