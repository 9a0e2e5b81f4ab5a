"""Training: imitation of Belady (then a short PPO run) gives a policy that beats LRU on a held-out
slice it never trained on; `algo memory train` saves a loadable policy."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from streams.errors import DataError
from streams.memory import train as training
from streams.memory.model import EvictionPolicy
from streams.memory.simulator import simulate
from streams.memory.synthetic import generate, write_generated


@pytest.fixture(scope="module")
def trace():
    return generate("backtest-scans", 24_000, seed=21)


def test_trained_policy_beats_lru_on_the_held_out_slice(trace, monkeypatch):
    monkeypatch.setattr(training, "ROWS_PER_CAPACITY", 40_000)
    monkeypatch.setattr(training, "EPOCHS", 3)
    split = trace.split_index(0.5)
    capacity = max(2, round(0.05 * trace.distinct()))
    policy, report = training.train_policy(trace, split, [capacity], use_bytes=False, seed=3, rl_timesteps=256)
    assert set(report["stages"]) >= {"lru", "imitation_round_0", "imitation", "ppo"} and report["chosen"] in report["stages"]
    assert report["stages"]["ppo"]["timesteps"] == 256
    learned = simulate(trace, policy, capacity, use_bytes=False, count_from=split)
    lru = simulate(trace, "lru", capacity, use_bytes=False, count_from=split)
    assert learned.misses < 0.97 * lru.misses


def test_train_refuses_a_too_short_training_part(trace):
    with pytest.raises(DataError, match="too short"):
        training.train_policy(trace, 500, [10], use_bytes=False, seed=0, rl_timesteps=0)


def test_the_train_command_saves_a_policy(tmp_path, monkeypatch):
    from streams.memory.cli import memory

    monkeypatch.setattr(training, "ROWS_PER_CAPACITY", 20_000)
    monkeypatch.setattr(training, "EPOCHS", 2)
    monkeypatch.setattr(training, "DAGGER_ROUNDS", 1)
    paths = []
    for seed in (1, 2):
        path = tmp_path / f"t{seed}.csv"
        write_generated(generate("zipf-drift", 5000, seed=seed), path)
        paths += ["--trace", str(path)]
    result = CliRunner().invoke(memory, ["train", *paths, "--sizes", "0.05", "--rl-timesteps", "0",
                                         "--out", str(tmp_path / "policy"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    policy = EvictionPolicy.load(tmp_path / "policy")
    assert policy.version == summary["version"]
    assert policy.metadata["data"]["requests"] == 10_000 and policy.metadata["seed"] == 0
    assert np.isfinite(policy.score(np.zeros((4, len(policy.metadata["feature_names"])), np.float32))).all()
