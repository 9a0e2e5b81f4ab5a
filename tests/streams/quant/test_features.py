"""The Quant observation: no look-ahead, and serving computes exactly what training saw."""
from __future__ import annotations

import numpy as np
import pytest

from streams.quant.features import FeatureSpec, feature_matrix, latest_features, observation
from tests import fixtures

SPEC = FeatureSpec()


def closes(n=300, seed=1):
    return fixtures.ohlcv(n, seed)["close"].to_numpy()


def test_rows_before_warmup_are_undefined_and_the_rest_finite_and_clipped():
    matrix = feature_matrix(closes(), SPEC)
    assert matrix.shape == (300, SPEC.size - 1)
    assert np.isnan(matrix[: SPEC.warmup - 1]).all()
    assert np.isfinite(matrix[SPEC.warmup - 1:]).all()
    assert np.abs(matrix[SPEC.warmup - 1:]).max() <= SPEC.clip


def test_changing_future_bars_never_changes_earlier_features():
    base = closes()
    changed = base.copy()
    changed[200:] *= np.linspace(0.5, 3.0, 100)
    a, b = feature_matrix(base, SPEC), feature_matrix(changed, SPEC)
    np.testing.assert_array_equal(a[:200], b[:200])
    assert not np.allclose(a[200:], b[200:])


def test_the_streaming_window_gives_the_batch_row_bit_for_bit():
    c = closes(500, 3)
    matrix = feature_matrix(c, SPEC)
    for t in (SPEC.warmup - 1, SPEC.warmup, 250, 499):
        np.testing.assert_array_equal(latest_features(list(c[: t + 1]), SPEC), matrix[t])
    assert latest_features(list(c[: SPEC.warmup - 1]), SPEC) is None


def test_the_features_mean_what_the_docstring_says():
    c = closes(200, 5)
    t = 150
    r = np.diff(np.log(c))
    sigma = r[t - SPEC.vol_window:t].std(ddof=1)
    row = feature_matrix(c, SPEC)[t]
    assert row[0] == pytest.approx(np.clip(np.log(c[t] / c[t - 1]) / sigma, -5, 5))
    assert row[3] == pytest.approx(np.clip(np.log(c[t - 3] / c[t - 4]) / sigma, -5, 5))
    short = r[t - SPEC.short_vol_window:t].std(ddof=1)
    assert row[SPEC.window] == pytest.approx(np.log(short / sigma))
    trend = np.log(c[t] / c[t - SPEC.trend_window + 1:t + 1].mean()) / (sigma * np.sqrt(SPEC.trend_window))
    assert row[SPEC.window + 1] == pytest.approx(np.clip(trend, -5, 5))


def test_a_flat_price_stretch_gives_zero_features_instead_of_undefined_rows():
    c = np.full(150, 20.0)
    matrix = feature_matrix(c, SPEC)
    assert np.isnan(matrix[: SPEC.warmup - 1]).all() and (matrix[SPEC.warmup - 1:] == 0).all()
    assert (latest_features(list(c), SPEC) == 0).all()


def test_after_warm_up_every_row_is_finite_whatever_flat_runs_the_closes_hold():
    c = closes(400).copy()
    c[100:230] = c[99]  # a long flat run (old or illiquid data)
    c[300:312] = c[299]  # a quiet short window inside a moving long one
    matrix = feature_matrix(c, SPEC)
    assert np.isfinite(matrix[SPEC.warmup - 1:]).all()
    assert matrix[311, SPEC.window] == -SPEC.clip  # the lowest vol regime, not log(0)
    assert matrix[229, : SPEC.window].tolist() == [0.0] * SPEC.window


def test_observation_appends_the_position_and_the_spec_round_trips():
    row = feature_matrix(closes(), SPEC)[-1]
    obs = observation(row, -1.0)
    assert obs.dtype == np.float32 and obs.shape == (SPEC.size,) and obs[-1] == -1.0
    custom = FeatureSpec(window=10, vol_window=30, trend_window=20)
    assert FeatureSpec.from_dict({**custom.as_dict(), "names": [], "warmup": 0}) == custom
    assert custom.warmup == 31 and len(custom.names()) == custom.size
