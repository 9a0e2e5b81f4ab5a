import json

import pytest
from click.testing import CliRunner

from ops.cli import cli
from streams.memory import train
from streams.memory.trace import read_trace
from tests.streams.memory.test_evaluate import stand_in_trainer


def _run(*args):
    return CliRunner().invoke(cli, ["memory", *args])


@pytest.fixture(scope="module")
def small_trace(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "drift.csv"
    result = _run("generate", "--workload", "zipf-drift", "--requests", "3000", "--seed", "31", "--out", str(path))
    assert result.exit_code == 0, result.output
    return path


def test_generate_writes_a_readable_trace(small_trace):
    trace = read_trace(small_trace)
    assert len(trace) == 3000 and trace.distinct() > 100


def test_evaluate_json_prints_one_object(small_trace, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(train, "train_policy", stand_in_trainer(calls))
    plot = tmp_path / "mrc.png"
    result = _run("evaluate", "--trace", str(small_trace), "--sizes", "0.02,0.1", "--json", "--seed", "4",
                  "--rl-timesteps", "0", "--plot", str(plot))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # the whole stdout is the one object; progress went to stderr
    assert [row["fraction"] for row in report["sizes"]] == [0.02, 0.1]
    assert calls[0]["seed"] == 4 and calls[0]["rl_timesteps"] == 0 and calls[0]["end"] == 1500
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert "baseline LRU" in result.stderr


def test_evaluate_human_output_with_the_real_trainer(tmp_path):
    path = tmp_path / "scans.csv"
    assert _run("generate", "--workload", "backtest-scans", "--requests", "3000", "--seed", "32",
                "--out", str(path)).exit_code == 0
    result = _run("evaluate", "--trace", str(path), "--sizes", "0.05", "--rl-timesteps", "0")
    assert result.exit_code == 0, result.output
    for name in ("agent", "LRU", "S3-FIFO", "Belady", "gap closed"):
        assert name in result.stdout
    assert (tmp_path / "scans.mrc.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args, fragment", [
    (["evaluate", "--trace", "{trace}", "--sizes", "0.5,1"], "fractions in (0, 1)"),
    (["evaluate", "--trace", "{trace}", "--sizes", "x"], "--sizes"),
    (["evaluate", "--trace", "{trace}", "--train-fraction", "0"], "--train-fraction"),
    (["evaluate", "--trace", "{trace}", "--train-fraction", "half"], "--train-fraction"),
    (["evaluate", "--trace", "{missing}"], "no such file"),
    (["evaluate", "--trace", "{empty}"], "no requests"),
    (["evaluate", "--trace", "{one}"], "too few to split"),
    (["evaluate", "--trace", "{bad}"], "column size"),
    (["evaluate"], "--trace"),
    (["evaluate", "--trace", "{trace}", "--seed", "x"], "--seed"),
    (["generate", "--workload", "nope", "--out", "{out}"], "unknown workload"),
    (["generate", "--workload", "mixed", "--requests", "0", "--out", "{out}"], "at least 1"),
])
def test_bad_arguments_are_one_line(small_trace, tmp_path, args, fragment):
    (tmp_path / "empty.csv").write_text("time,key,size\n")
    (tmp_path / "one.csv").write_text("time,key,size\n1,a,1\n")
    (tmp_path / "bad.csv").write_text("time,key,size\n1,a,big\n")
    names = {"trace": small_trace, "missing": tmp_path / "nope.csv", "empty": tmp_path / "empty.csv",
             "one": tmp_path / "one.csv", "bad": tmp_path / "bad.csv", "out": tmp_path / "out.csv"}
    result = _run(*[arg.format(**{k: str(v) for k, v in names.items()}) for arg in args])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr
