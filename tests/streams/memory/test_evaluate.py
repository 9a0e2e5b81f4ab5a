import json

import numpy as np
import pytest

from streams.errors import DataError
from streams.memory import evaluate as evaluation
from streams.memory.features import FEATURE_NAMES
from streams.memory.synthetic import generate, write_generated
from streams.memory.trace import write_trace

AGE = FEATURE_NAMES.index("log_age")


class OldestFirst:
    """A stand-in policy: evicts the least recently used of the proposed candidates."""
    version = "stand-in-0"

    def score(self, features):
        return features[:, AGE].astype(np.float32)


def stand_in_trainer(calls):
    def train(trace, end, capacities, *, use_bytes, seed, rl_timesteps, progress=None):
        calls.append({"end": end, "capacities": capacities, "use_bytes": use_bytes, "seed": seed,
                      "rl_timesteps": rl_timesteps, "max_id_seen": int(trace.ids[:end].max())})
        return OldestFirst(), {"stages": {"stand-in": {}}, "requests": end}
    return train


@pytest.fixture(scope="module")
def trace_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("eval") / "scans.csv"
    write_generated(generate("backtest-scans", 6000, 21), path)
    return path


def test_report_shape_and_figures(trace_path):
    calls = []
    report = evaluation.evaluate(trace_path, sizes=[0.01, 0.05], train_fraction=0.5, seed=3, rl_timesteps=7,
                                 trainer=stand_in_trainer(calls))
    json.dumps(report)  # serialisable as is
    assert set(report) == {"trace", "requests", "distinct", "train_fraction", "train_requests", "scored_requests",
                           "unit", "sizes", "policy", "baselines", "seconds"}
    assert report["requests"] == 6000 and report["train_requests"] == 3000 and report["scored_requests"] == 3000
    assert report["unit"] == "objects" and report["train_fraction"] == 0.5
    capacities = [max(1, round(f * report["distinct"])) for f in (0.01, 0.05)]
    assert calls == [{"end": 3000, "capacities": sorted(capacities), "use_bytes": False, "seed": 3,
                      "rl_timesteps": 7, "max_id_seen": calls[0]["max_id_seen"]}]
    assert report["policy"]["version"] == "stand-in-0" and report["policy"]["training"]["requests"] == 3000
    assert report["baselines"]["Belady"] == "libcachesim.Belady"
    for row, fraction, capacity in zip(report["sizes"], (0.01, 0.05), capacities):
        assert row["fraction"] == fraction and row["capacity"] == capacity
        assert list(row["miss_ratio"]) == ["agent", "LRU", "LFU", "ARC", "LIRS", "WTinyLFU", "SIEVE", "S3-FIFO",
                                           "Belady"]
        assert set(row["gap_closed"]) == {"agent", "LFU", "ARC", "LIRS", "WTinyLFU", "SIEVE", "S3-FIFO"}
        ratios = row["miss_ratio"]
        for name, gap in row["gap_closed"].items():
            assert gap == pytest.approx((ratios["LRU"] - ratios[name]) / (ratios["LRU"] - ratios["Belady"]))
        classical = {n: ratios[n] for n in ("LRU", "LFU", "ARC", "LIRS", "WTinyLFU", "SIEVE", "S3-FIFO")}
        assert row["best_classical"] == min(classical, key=classical.get)
        assert row["agent_beats_best_classical"] == (ratios["agent"] < classical[row["best_classical"]])
        assert "byte_miss_ratio" not in row
        assert ratios["Belady"] <= min(ratios.values())
    assert {"read", "train", "baselines", "agent", "total"} <= set(report["seconds"])


def test_byte_mode_reports_byte_miss_ratios(trace_path):
    report = evaluation.evaluate(trace_path, sizes=[0.05], train_fraction=0.6, use_bytes=True, rl_timesteps=0,
                                 trainer=stand_in_trainer([]))
    row = report["sizes"][0]
    assert report["unit"] == "bytes" and report["train_requests"] == 3600
    assert set(row["byte_miss_ratio"]) == set(row["miss_ratio"])
    assert report["baselines"]["Belady"] == "libcachesim.BeladySize"
    assert row["capacity"] > report["distinct"]  # bytes, not objects


def test_gap_closed_is_null_when_lru_equals_belady(tmp_path):
    keys = [f"k{i}" for i in range(40)]
    path = tmp_path / "fits.csv"
    write_trace(path, range(80), keys + ["k39"] * 40, [1] * 80)  # the scored half asks for the last key only
    rows = evaluation.evaluate(path, sizes=[0.5], rl_timesteps=0, trainer=stand_in_trainer([]))["sizes"]
    assert rows[0]["miss_ratio"]["LRU"] == rows[0]["miss_ratio"]["Belady"] == 0.0
    assert set(rows[0]["gap_closed"].values()) == {None}


@pytest.mark.parametrize("kwargs, fragment", [
    ({"sizes": [0.0]}, "fractions in (0, 1)"),
    ({"sizes": [1.5]}, "fractions in (0, 1)"),
    ({"train_fraction": 1.0}, "--train-fraction"),
    ({"rl_timesteps": -1}, "--rl-timesteps"),
])
def test_bad_arguments(trace_path, kwargs, fragment):
    with pytest.raises(DataError, match=None) as caught:
        evaluation.evaluate(trace_path, trainer=stand_in_trainer([]), **kwargs)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_empty_and_too_small_traces(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("time,key,size\n")
    with pytest.raises(DataError, match="no requests"):
        evaluation.evaluate(empty, trainer=stand_in_trainer([]))
    one = tmp_path / "one.csv"
    one.write_text("time,key,size\n1,a,1\n")
    with pytest.raises(DataError, match="too few to split"):
        evaluation.evaluate(one, trainer=stand_in_trainer([]))


def test_parse_sizes():
    assert evaluation.parse_sizes("0.01, 0.05,0.1") == [0.01, 0.05, 0.1]
    for text in ("", "a,b", "0.5,1"):
        with pytest.raises(DataError):
            evaluation.parse_sizes(text)


def test_plot_is_a_png(trace_path, tmp_path):
    report = evaluation.evaluate(trace_path, sizes=[0.01, 0.1], rl_timesteps=0, trainer=stand_in_trainer([]))
    written = evaluation.write_plot(report, tmp_path / "curve.png")
    assert written.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert evaluation.default_plot_path("/x/y/t.csv").as_posix() == "/x/y/t.mrc.png"
    assert any("agent" in line for line in evaluation.format_tables(report))
