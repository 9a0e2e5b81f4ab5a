from __future__ import annotations

import math

import numpy as np
import pytest

import risk_core as rc


def test_known_values():
    r = np.arange(1, 101) / 1000.0 - 0.05
    assert rc.historical_var(r, 0.95) == pytest.approx(-(np.quantile(r, 0.05)))
    assert rc.historical_cvar(r, 0.95) == pytest.approx(0.047)
    assert rc.normal_ppf(0.975) == pytest.approx(1.959963984540054, abs=1e-14)
    from statistics import NormalDist

    for p in (1e-12, 1e-5, 0.01, 0.3, 0.5, 0.77, 0.99, 1 - 1e-9):
        assert rc.normal_ppf(p) == pytest.approx(NormalDist().inv_cdf(p), rel=1e-14, abs=1e-15)


def test_rolling_vol_and_drawdown():
    r = np.array([0.01, -0.01, 0.02, 0.0, 0.03])
    out = rc.rolling_volatility(r, 3, annualize=False)
    assert np.isnan(out[:2]).all() and out[2] == pytest.approx(np.std(r[:3], ddof=1))
    dd = rc.drawdown([100, 120, 90, 100, 130, 117])
    assert dd.max_drawdown == pytest.approx(0.25) and (dd.peak_index, dd.trough_index, dd.max_duration) == (1, 2, 2)


@pytest.mark.parametrize("call, message", [
    (lambda: rc.historical_var([], 0.95), "empty"),
    (lambda: rc.historical_var([0.1, math.nan], 0.95), "not finite"),
    (lambda: rc.parametric_var([0.1, 0.2], 1.5), "confidence"),
    (lambda: rc.rolling_volatility([0.1, 0.2], 1), "window"),
    (lambda: rc.drawdown([1.0, -1.0]), "equity must be finite and > 0"),
    (lambda: rc.normal_ppf(0.0), "p must be in"),
])
def test_errors(call, message):
    with pytest.raises(rc.RiskCoreError, match=message):
        call()
