"""EvictionPolicy: numpy scoring that equals the torch network it was trained as, safetensors +
JSON files (no pickle), content-addressed versions, the delete rule, the shipped policy, the registry."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from streams.errors import ModelError
from streams.memory.features import FEATURE_NAMES, KIND_NAMES, N_FEATURES
from streams.memory.model import (N_INPUTS, SHIPPED_DIR, WEIGHTS_FILE, EvictionPolicy, network_inputs,
                                  version_of, weights_bytes)


def random_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = (N_INPUTS, 16, 8, 1)
    weights = {"input_mean": rng.normal(size=N_INPUTS).astype(np.float32),
               "input_scale": rng.uniform(0.5, 2.0, N_INPUTS).astype(np.float32)}
    for i in range(3):
        weights[f"w{i}"] = rng.normal(scale=0.3, size=(sizes[i], sizes[i + 1])).astype(np.float32)
        weights[f"b{i}"] = rng.normal(scale=0.1, size=sizes[i + 1]).astype(np.float32)
    return weights


def features(n: int = 40, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(2.0, 1.5, size=(n, N_FEATURES)).astype(np.float32)


def test_score_is_the_mlp_on_batch_relative_inputs():
    weights = random_weights()
    x = (network_inputs(features()) - weights["input_mean"]) / weights["input_scale"]
    for i in range(3):
        x = x @ weights[f"w{i}"] + weights[f"b{i}"]
        x = np.maximum(x, 0) if i < 2 else x
    np.testing.assert_allclose(EvictionPolicy(weights).score(features()), x[:, 0], rtol=1e-4, atol=1e-4)
    # permutation-equivariant: shuffling the candidates shuffles the scores
    order = np.random.default_rng(2).permutation(40)
    policy = EvictionPolicy(weights)
    np.testing.assert_allclose(policy.score(features()[order]), policy.score(features())[order], rtol=1e-5, atol=1e-5)


def test_byte_mode_adds_log_size_and_choose_takes_the_best():
    weights = random_weights()
    rows = features()
    plain, sized = EvictionPolicy(weights), EvictionPolicy(weights, {"use_bytes": True})
    np.testing.assert_allclose(sized.score(rows) - plain.score(rows), rows[:, FEATURE_NAMES.index("log_size")],
                               rtol=1e-5, atol=1e-4)
    ids = np.arange(100, 140)
    chosen = plain.choose(ids, rows, 3)
    assert list(chosen) == list(ids[np.argsort(-plain.score(rows))[:3]])


def test_save_load_round_trip_is_identical_and_pickle_free(tmp_path):
    policy = EvictionPolicy(random_weights(), {"seed": 3, "use_bytes": False})
    policy.save(tmp_path)
    blob = (tmp_path / WEIGHTS_FILE).read_bytes()
    assert policy.version == version_of(blob) and policy.version.startswith("memory-")
    assert weights_bytes(random_weights()) == blob  # deterministic bytes: the version is content-addressed
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    assert metadata["feature_names"] == list(FEATURE_NAMES) and metadata["version"] == policy.version
    loaded = EvictionPolicy.load(tmp_path)
    assert loaded.version == policy.version
    np.testing.assert_array_equal(loaded.score(features()), policy.score(features()))
    assert not any(b"pickle" in path.read_bytes()[:200] for path in tmp_path.iterdir())
    (tmp_path / WEIGHTS_FILE).write_bytes(pickle.dumps(random_weights()))
    with pytest.raises(ModelError, match="not a safetensors"):
        EvictionPolicy.load(tmp_path)
    with pytest.raises(ModelError, match="not a saved memory policy"):
        EvictionPolicy.load(tmp_path / "nothing")


def test_should_delete_only_far_and_cheap():
    policy = EvictionPolicy(random_weights())
    far, near = 20.0, 3.0
    cheap = KIND_NAMES.index("bars")  # recompute cost 2
    dear = KIND_NAMES.index("embedding")  # a model forward pass: demote, never delete
    assert policy.should_delete(far, cheap) and policy.should_delete(far, "other")
    assert not policy.should_delete(near, cheap)
    assert not policy.should_delete(far, dear) and not policy.should_delete(far, "backtest")
    sized = EvictionPolicy(random_weights(), {"use_bytes": True})  # its score includes log1p(size)
    assert sized.should_delete(far + np.log1p(8192), cheap, size=8192)
    assert not sized.should_delete(near + np.log1p(8192), cheap, size=8192)
    assert not sized.should_delete(12.0, cheap)  # size unknown: assumed large, so demoted


def test_the_shipped_policy_loads_and_scores():
    policy = EvictionPolicy.shipped()
    assert policy.version == EvictionPolicy.load(SHIPPED_DIR).version
    assert np.isfinite(policy.score(features())).all()
    assert sum(path.stat().st_size for path in SHIPPED_DIR.iterdir()) < 1_000_000


@pytest.mark.integration
def test_registry_round_trip(provisioned):
    policy = EvictionPolicy(random_weights(seed=11), {"seed": 11, "data": {"source": "test", "requests": 5}})
    assert policy.register(provisioned) == policy.version
    current = EvictionPolicy.load_registered(provisioned)
    assert current.version == policy.version
    np.testing.assert_array_equal(current.score(features()), policy.score(features()))
    assert EvictionPolicy.load_registered(provisioned, policy.version).version == policy.version
    with pytest.raises(ModelError, match="not registered"):
        EvictionPolicy.load_registered(provisioned, "memory-000000000000")
