"""Periods per year from the bars' spacing and calendar (streams.market.periods)."""
import numpy as np
import pandas as pd
import pytest

from streams.market.datasets import load_bars
from streams.market.periods import infer_periods, periods_per_year


def stamps(index: pd.DatetimeIndex) -> np.ndarray:
    return index.tz_localize(None).to_numpy(dtype="datetime64[us]") if index.tz else index.to_numpy("datetime64[us]")


def sessions(start: str, days: int, open_: str, close: str, freq: str) -> np.ndarray:
    """Bars of `freq` from open_ (inclusive) to close (exclusive) on weekdays, UTC."""
    out = []
    for day in pd.bdate_range(start, periods=days):
        out.append(pd.date_range(f"{day.date()} {open_}", f"{day.date()} {close}", freq=freq, inclusive="left"))
    return stamps(out[0].append(out[1:]))


def fx_hours(start="2021-01-03 22:00", end="2022-01-02 22:00") -> np.ndarray:
    """FX's 24x5 in hourly bars: Sunday 22:00 UTC to Friday 22:00 UTC."""
    hours = pd.date_range(start, end, freq="h", inclusive="left")
    week_hour = hours.day_of_week * 24 + hours.hour
    trading = (week_hour >= 6 * 24 + 22) | (week_hour < 4 * 24 + 22)
    return stamps(hours[trading])


def test_hourly_fx_bars_are_24x5():
    periods = infer_periods(fx_hours())
    assert periods.per_year == 24 * 260 and "24x5" in periods.basis


def test_hourly_bars_of_us_equity_sessions_count_the_bars_each_session_has():
    # 9:30 .. 15:30: seven hourly bars in a 6.5 h session, 252 sessions a year
    periods = infer_periods(sessions("2021-01-04", 300, "09:30", "16:00", "h"))
    assert periods.per_year == 7 * 252 and "252 days" in periods.basis


def test_minute_bars_of_us_equity_sessions_and_of_a_24x7_market():
    assert infer_periods(sessions("2021-01-04", 5, "14:30", "21:00", "min")).per_year == 390 * 252
    crypto = stamps(pd.date_range("2021-01-01", periods=3 * 1440, freq="min"))
    periods = infer_periods(crypto)
    assert periods.per_year == 1440 * 365 and "24x7" in periods.basis


def test_dailies_weeklies_and_monthlies():
    assert infer_periods(load_bars("sp500", "SP500").dates).per_year == 252
    assert infer_periods(stamps(pd.date_range("2020-01-01", periods=400, freq="D"))).per_year == 365
    assert infer_periods(stamps(pd.date_range("2010-01-04", periods=300, freq="W-MON"))).per_year == 52
    assert infer_periods(stamps(pd.date_range("2010-01-01", periods=60, freq="MS"))).per_year == 12


def test_too_few_bars_assume_dailies_and_an_override_wins():
    one = stamps(pd.date_range("2021-01-04 10:00", periods=1, freq="h"))
    assert infer_periods(one).per_year == 252 and "assumed" in infer_periods(one).basis
    chosen = periods_per_year(fx_hours(), 1000.0)
    assert chosen.per_year == 1000.0 and chosen.as_dict() == {"periods_per_year": 1000.0,
                                                             "periods_per_year_basis": "1000 (--periods-per-year)"}
    assert periods_per_year(fx_hours()).per_year == pytest.approx(6240)
