"""The Quant policy: training, inference, the saved artifact and its metadata."""
from __future__ import annotations

import json

import numpy as np
import pytest

from streams.quant import model as qm
from streams.errors import ModelError
from streams.quant.env import EnvConfig, MarketSeries
from streams.quant.features import FeatureSpec
from tests import fixtures

SPEC, CONFIG = FeatureSpec(), EnvConfig()


@pytest.fixture(scope="module")
def market():
    frame = fixtures.ohlcv(500, 11)
    return MarketSeries.build("SYN", frame["open"], frame["close"], SPEC)


def small_model(market, seed=0, timesteps=512, **kwargs):
    return qm.train_policy([market], SPEC, CONFIG, timesteps=timesteps, seed=seed,
                           hyperparameters={"n_steps": 256, "batch_size": 64, "n_epochs": 2}, **kwargs)


@pytest.fixture(scope="module")
def policy(market):
    model = small_model(market)
    artifact = qm.artifact_bytes(model)
    metadata = qm.build_metadata(artifact=artifact, seed=0, timesteps=512, hyperparameters={"n_steps": 256},
                                 spec=SPEC, config=CONFIG, source="test", symbols=["SYN"], start="2005-01-03",
                                 end="2006-12-01", bars=len(market), metrics={"in_sample": {}})
    return qm.QuantPolicy(model, metadata), artifact


def test_probabilities_are_a_distribution_and_decide_takes_the_likeliest(policy, market):
    p, _ = policy
    rows = market.features[SPEC.warmup:SPEC.warmup + 20]
    probs = p.probabilities(np.hstack([rows, np.zeros((20, 1))]))
    assert probs.shape == (20, 3) and np.allclose(probs.sum(axis=1), 1.0) and (probs > 0).all()
    sign, confidence, all_probs = p.decide(rows[0], 0.0)
    assert confidence == pytest.approx(all_probs.max()) and sign == CONFIG.positions[int(np.argmax(all_probs))]


def test_batched_rollout_equals_the_bar_by_bar_walk_the_agent_does(policy, market):
    p, _ = policy
    start = market.first_decision_bar()
    signs, confidence = p.rollout(market.features, start, len(market))
    position = 0.0
    for t in range(start, len(market)):
        position, conf, _ = p.decide(market.features[t], position)
        assert position == signs[t - start] and conf == pytest.approx(confidence[t - start], abs=1e-6)


def test_the_artifact_round_trips_and_its_version_is_its_content(policy, market, tmp_path):
    p, artifact = policy
    assert p.version == qm.version_of(artifact) and p.version.startswith("quant-ppo-")
    qm.save(tmp_path / "m", artifact, p.metadata)
    loaded = qm.QuantPolicy.load(tmp_path / "m")
    obs = np.hstack([market.features[100:110], np.ones((10, 1))])
    np.testing.assert_allclose(loaded.probabilities(obs), p.probabilities(obs), rtol=1e-6)
    metadata = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert metadata["seed"] == 0 and metadata["data"]["symbols"] == ["SYN"]
    assert metadata["features"]["names"][-1] == "position" and metadata["env"]["fee_bps"] == CONFIG.fee_bps
    assert metadata["hyperparameters"]["n_steps"] == 256 and metadata["hyperparameters"]["gamma"] == 0.99
    assert {"torch", "stable_baselines3", "gymnasium"} <= set(metadata["libraries"])


def test_the_same_seed_trains_the_same_policy(market):
    a, b, c = small_model(market, seed=3), small_model(market, seed=3), small_model(market, seed=4)
    obs = np.hstack([market.features[100:150], np.zeros((50, 1))]).astype(np.float32)
    wrap = lambda m: qm.QuantPolicy(m, {"version": "x", "features": SPEC.as_dict(), "env": CONFIG.as_dict()})
    np.testing.assert_allclose(wrap(a).probabilities(obs), wrap(b).probabilities(obs), rtol=1e-6)
    assert not np.allclose(wrap(a).probabilities(obs), wrap(c).probabilities(obs))


def test_checkpoints_are_written_while_training(market, tmp_path):
    small_model(market, timesteps=512, checkpoint_dir=tmp_path, checkpoint_every=256)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ppo_256_steps.zip", "ppo_512_steps.zip"]


def test_bad_models_and_parameters_are_model_errors(tmp_path, market):
    with pytest.raises(ModelError, match="not a loadable"):
        qm.QuantPolicy.from_artifact(b"not a zip", {"version": "broken"})
    with pytest.raises(ModelError, match="not a saved model"):
        qm.QuantPolicy.load(tmp_path)
    with pytest.raises(ModelError, match="unknown PPO hyper-parameter"):
        qm.train_policy([market], SPEC, CONFIG, timesteps=256, seed=0, hyperparameters={"lr": 1})
