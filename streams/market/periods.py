"""Bars per year, inferred from the bars' spacing and calendar, for annualised figures (return,
volatility, Sharpe, turnover): risk_core's stats take it as `periods_per_year`.

  spacing (median gap)   calendar seen in the bars                 periods per year
  about a month          -                                         12
  about a week           -                                         52
  about a day            weekdays only / Saturdays too             252 / 365
  intraday               sessions under 24 h on weekdays (stocks)  bars a day x 252
                         24 h on weekdays (FX, 24x5)               bars a day x 260 (52 weeks x 5)
                         Saturdays too (crypto, 24x7)              bars a day x 365
  anything else          -                                         365.25 days / spacing

"bars a day" is the median number of bars per UTC date, so a US equity session of 6.5 h in
hourly bars stamped 9:30 .. 15:30 counts 7 (as many returns as the data has per day) and in
minute bars 390. A calendar holding Saturdays is one where at least 5% of the bars fall on one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DAY_S = 86_400.0
_SATURDAY = 5  # numpy's weekday of 1970-01-01 is Thursday: (days + 3) % 7 gives Monday = 0


@dataclass(frozen=True)
class Periods:
    per_year: float
    basis: str  # how it was chosen, for the table and --json

    def as_dict(self) -> dict:
        return {"periods_per_year": self.per_year, "periods_per_year_basis": self.basis}


def _spacing_label(seconds: float) -> str:
    for unit, size in (("d", DAY_S), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def infer_periods(dates: np.ndarray) -> Periods:
    """Periods per year for bars starting at `dates` (datetime64, oldest first, UTC)."""
    stamps = np.asarray(dates, dtype="datetime64[s]").astype(np.int64)
    gaps = np.diff(stamps)
    gaps = gaps[gaps > 0]
    if len(gaps) == 0:
        return Periods(252.0, "252 (daily assumed: fewer than two distinct bar times)")
    spacing = float(np.median(gaps))
    days = stamps // int(DAY_S)
    saturdays = float(np.mean((days + 3) % 7 == _SATURDAY)) >= 0.05
    label = _spacing_label(spacing)
    if spacing >= 25 * DAY_S and spacing <= 35 * DAY_S:
        return Periods(12.0, f"12 (inferred: monthly bars, median spacing {spacing / DAY_S:.0f} days)")
    if spacing >= 5 * DAY_S and spacing <= 8 * DAY_S:
        return Periods(52.0, f"52 (inferred: weekly bars, median spacing {spacing / DAY_S:.0f} days)")
    if spacing >= 0.75 * DAY_S and spacing <= 1.5 * DAY_S:
        if saturdays:
            return Periods(365.0, "365 (inferred: daily bars, 7 days a week)")
        return Periods(252.0, "252 (inferred: daily bars on trading days)")
    if spacing < 0.75 * DAY_S:
        _, per_date = np.unique(days, return_counts=True)
        per_day = float(np.median(per_date))
        if saturdays:
            sessions, calendar = 365, "7 days a week (24x7)"
        elif per_day * spacing >= 23 * 3600:
            sessions, calendar = 260, "24 h on weekdays (24x5)"
        else:
            sessions, calendar = 252, f"sessions of {per_day * spacing / 3600:g} h on trading days"
        return Periods(per_day * sessions, f"{per_day * sessions:g} (inferred: {label} bars, {per_day:g} a day, "
                                           f"{sessions} days a year, {calendar})")
    per_year = 365.25 * DAY_S / spacing
    return Periods(per_year, f"{per_year:.4g} (inferred: one bar every {spacing / DAY_S:.1f} days)")


def periods_per_year(dates: np.ndarray, override: float | None = None) -> Periods:
    """`override` when given (--periods-per-year), else infer_periods(dates)."""
    if override is not None:
        return Periods(float(override), f"{float(override):g} (--periods-per-year)")
    return infer_periods(dates)
