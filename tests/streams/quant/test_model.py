"""The Quant policy: training, inference, the saved artifact (safetensors weights + JSON metadata),
and its rebuild without unpickling anything."""
from __future__ import annotations

import json
import pickle

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
    metadata = qm.build_metadata(artifact=artifact, architecture=qm.architecture_of(model.policy), seed=0, timesteps=512, hyperparameters={"n_steps": 256},
                                 spec=SPEC, config=CONFIG, source="test", symbols=["SYN"], start="2005-01-03",
                                 end="2006-12-01", bars=len(market), metrics={"in_sample": {}})
    return qm.QuantPolicy(model.policy, metadata), artifact


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
    wrap = lambda m: qm.QuantPolicy.from_model(m, SPEC, CONFIG, version="x")
    np.testing.assert_allclose(wrap(a).probabilities(obs), wrap(b).probabilities(obs), rtol=1e-6)
    assert not np.allclose(wrap(a).probabilities(obs), wrap(c).probabilities(obs))


def test_checkpoints_are_written_while_training(market, tmp_path):
    small_model(market, timesteps=512, checkpoint_dir=tmp_path, checkpoint_every=256)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ppo_256_steps.zip", "ppo_512_steps.zip"]


def test_bad_models_and_parameters_are_model_errors(tmp_path, market):
    with pytest.raises(ModelError, match="no policy architecture"):
        qm.QuantPolicy.from_artifact(b"not a zip", {"version": "broken"})
    with pytest.raises(ModelError, match="not a saved model"):
        qm.QuantPolicy.load(tmp_path)
    with pytest.raises(ModelError, match="unknown PPO hyper-parameter"):
        qm.train_policy([market], SPEC, CONFIG, timesteps=256, seed=0, hyperparameters={"lr": 1})


# --- weights without pickle ---------------------------------------------------------------------

class _Trap:
    """Unpickling this runs code: it creates a file. Nothing may unpickle a stored artifact."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_the_artifact_is_safetensors_and_the_metadata_json(policy, tmp_path):
    from safetensors.torch import load

    p, artifact = policy
    tensors = load(artifact)
    assert set(tensors) == set(p.network.state_dict())
    assert p.metadata["artifact_format"] == "safetensors"
    architecture = json.loads(json.dumps(p.metadata["policy"]))  # plain JSON, as it is stored
    assert architecture["net_arch"] == {"pi": [64, 64], "vf": [64, 64]} and architecture["activation"] == "Tanh"
    assert architecture["action_space"] == {"type": "Discrete", "n": len(CONFIG.positions)}
    assert architecture["observation_space"]["shape"] == [SPEC.size]
    assert qm.weights_bytes(p.network) == artifact  # deterministic: the version is the content


def test_the_rebuilt_policy_acts_exactly_like_the_trained_one(policy, market):
    p, artifact = policy
    rebuilt = qm.QuantPolicy.from_artifact(artifact, json.loads(json.dumps(p.metadata, default=str)))
    assert rebuilt.network is not p.network
    rows = market.features[SPEC.warmup:]
    for position in CONFIG.positions:
        obs = np.hstack([rows, np.full((len(rows), 1), position)])
        np.testing.assert_array_equal(rebuilt.probabilities(obs), p.probabilities(obs))
    start = market.first_decision_bar()
    for a, b in zip(rebuilt.rollout(market.features, start, len(market)), p.rollout(market.features, start, len(market))):
        np.testing.assert_array_equal(a, b)
    obs = np.hstack([rows[:50], np.zeros((50, 1))]).astype(np.float32)
    import torch

    with torch.no_grad():
        np.testing.assert_array_equal(rebuilt.network.predict(obs, deterministic=True)[0],
                                      p.network.predict(obs, deterministic=True)[0])


@pytest.mark.parametrize("blob", ["pickle", "zip", "garbage"])
def test_weights_that_are_not_safetensors_are_refused_unread(policy, tmp_path, blob):
    p, artifact = policy
    trap = tmp_path / "unpickled"
    if blob == "pickle":
        data = pickle.dumps({"weights": _Trap(str(trap))})
    elif blob == "zip":
        data = b"PK\x03\x04" + pickle.dumps(_Trap(str(trap)))
    else:
        data = artifact[:-10]
    with pytest.raises(ModelError, match="refused|not a safetensors"):
        qm.QuantPolicy.from_artifact(data, p.metadata)
    assert not trap.exists()


def test_weights_of_another_architecture_are_refused(policy, market):
    p, _ = policy
    other = qm.train_policy([market], SPEC, CONFIG, timesteps=64, seed=1,
                            hyperparameters={"n_steps": 64, "batch_size": 64, "n_epochs": 1, "net_arch": [16]})
    with pytest.raises(ModelError, match="do not fit the architecture"):
        qm.QuantPolicy.from_artifact(qm.artifact_bytes(other), p.metadata)
    with pytest.raises(ModelError, match="unknown activation"):
        qm.QuantPolicy.from_artifact(qm.artifact_bytes(other), {**p.metadata, "policy": {**p.metadata["policy"],
                                                                                        "activation": "os.system"}})


def test_an_old_pickled_model_directory_is_refused(tmp_path):
    (tmp_path / "metadata.json").write_text("{}")
    (tmp_path / "model.zip").write_bytes(b"PK")
    with pytest.raises(ModelError, match="old pickled format"):
        qm.QuantPolicy.load(tmp_path)


@pytest.mark.integration
def test_the_registry_serves_rebuilt_policies_and_refuses_pickles(provisioned, policy, market, tmp_path):
    """Real Postgres: a registered policy comes back identical; a row whose weights blob is a pickle,
    or a row in the old SB3-zip format, is refused without being unpickled."""
    import uuid

    import psycopg
    from psycopg.types.json import Jsonb

    p, artifact = policy
    model = f"test-weights-{uuid.uuid4().hex[:8]}"  # a model of its own: never current for a running worker
    metadata = {**p.metadata, "model": model, "version": f"{model}-good"}
    assert qm.register(provisioned, artifact, metadata) == metadata["version"]
    fetched = qm.fetch(provisioned, model=model)
    obs = np.hstack([market.features[SPEC.warmup:SPEC.warmup + 200], np.zeros((200, 1))])
    np.testing.assert_array_equal(fetched.probabilities(obs), p.probabilities(obs))
    assert qm.list_versions(provisioned, model)[0]["artifact_format"] == "safetensors"

    trap = tmp_path / "unpickled"
    poisoned = {**metadata, "version": f"{model}-pickle"}
    qm.register(provisioned, pickle.dumps(_Trap(str(trap))), poisoned)
    with pytest.raises(ModelError, match="not a safetensors"):
        qm.fetch(provisioned, version=poisoned["version"])
    with pytest.raises(ModelError, match="not a safetensors"):
        qm.fetch(provisioned, model=model)  # it is the current one now: refused too, nothing served
    assert not trap.exists()

    with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
        conn.execute("""INSERT INTO model_versions (namespace, model, version, algorithm, data_source, bars, features,
                            hyperparameters, metadata, artifact, artifact_sha256, artifact_format)
                        VALUES (%s, %s, %s, 'PPO', 'test', 0, '{}', '{}', %s, %s, '', 'sb3-zip')""",
                     (provisioned.model_namespace, model, f"{model}-old", Jsonb({"version": f"{model}-old"}), pickle.dumps(_Trap(str(trap)))))
        try:
            with pytest.raises(ModelError, match="never loaded"):
                qm.fetch(provisioned, version=f"{model}-old")
            assert qm.current_version(provisioned, model) == poisoned["version"]  # old rows are never current
        finally:
            conn.execute("DELETE FROM model_versions WHERE model = %s", (model,))
    assert not trap.exists()
