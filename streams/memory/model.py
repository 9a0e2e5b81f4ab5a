"""The learned eviction policy at serve time: a small per-candidate MLP in numpy.

The network scores each candidate from its KeyTable features plus the same features minus their mean
over the batch of candidates, and the log age of the batch's oldest candidate with each one's age
relative to it (a DeepSets-style context: the batch is a sample of the cache with its LRU tail, so
these say how big and how busy the cache is, which lets one network serve every cache size; without
the oldest-age context one network trained on 1/5/10% lost to LRU at 1% on a dev trace). The score is the predicted log1p of the number of requests until the key's next access
(trained to imitate Belady, then fine-tuned by PPO: train.py); in byte mode log(size) is added, so
the policy evicts by predicted distance x size (Belady-size). Higher = evict first.

Saved as model.safetensors (the weights: tensors only, loading runs no code) + metadata.json (feature
names, architecture, training summary, seed, library versions). version = "memory-" + the first 12
hex of the weights' sha256. Registered in Postgres's model_versions (model "memory", the same table
and namespaces as the quant model).
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

from streams.errors import ModelError
from streams.model_registry import WEIGHTS_FORMAT, registry_call, version_row
from streams.memory import keys
from streams.memory.features import FEATURE_NAMES, KIND_NAMES, N_FEATURES

MODEL = "memory"
WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "metadata.json"
SHIPPED_DIR = Path(__file__).resolve().parent / "data" / "policy"
# the columns also given relative to the batch mean (recency, frequency and size: the scale-dependent ones)
RELATIVE_FEATURES = ("log_age", "log_count", "log_gap_1", "log_mean_gap", "log_decayed_count_h100",
                     "log_decayed_count_h1000", "log_decayed_count_h10000", "log_decayed_count_h100000", "log_size")
RELATIVE_INDEX = np.array([FEATURE_NAMES.index(name) for name in RELATIVE_FEATURES], dtype=np.int64)
AGE = FEATURE_NAMES.index("log_age")
# and two columns of cache context: log age relative to the batch's oldest, and the oldest's log age (the
# proposals hold the LRU tail, so that is about the cache's eviction age: how long a key survives unused)
N_INPUTS = N_FEATURES + len(RELATIVE_INDEX) + 2
DELETE_HORIZON = 100_000  # requests: predicted re-use later than this counts as "no re-use"
CHEAP_RECOMPUTE = 2.0
SIZE_WHEN_UNKNOWN = 1 << 20  # bytes: should_delete's assumption in byte mode when no size is given  # keys.recompute_cost at or below this is cheap enough to delete rather than demote


def network_inputs(features: np.ndarray) -> np.ndarray:
    """(n, N_INPUTS): the features and the scale-dependent ones relative to the batch mean."""
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or features.shape[1] != N_FEATURES:
        raise ModelError(f"features must be (n, {N_FEATURES}), got {features.shape}")
    relative = features[:, RELATIVE_INDEX]
    oldest = features[:, AGE].max(initial=0.0)
    return np.hstack([features, relative - relative.mean(axis=0, keepdims=True),
                      (features[:, AGE] - oldest)[:, None], np.full((len(features), 1), oldest, np.float32)])


def weights_bytes(weights: dict[str, np.ndarray]) -> bytes:
    from safetensors.numpy import save

    return save({name: np.ascontiguousarray(value, dtype=np.float32) for name, value in sorted(weights.items())},
                metadata={"format": "algo-memory-policy"})


def weights_from_bytes(blob: bytes, version: str = "?") -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load

    if blob[:2] == b"PK":
        raise ModelError(f"memory policy {version}: the weights are a zip (pickles), not safetensors; refused")
    try:
        return load(blob)
    except (SafetensorError, ValueError, OverflowError) as error:
        raise ModelError(f"memory policy {version}: the weights are not a safetensors blob ({error}); refused") from error


def version_of(blob: bytes) -> str:
    return f"{MODEL}-{hashlib.sha256(blob).hexdigest()[:12]}"


class _Expert:
    """One MLP: layers `w0,b0,w1,b1,...` (ReLU between, linear output) after the input
    standardisation `input_mean`/`input_scale`, folded for float32 numpy inference."""

    def __init__(self, weights: dict[str, np.ndarray]):
        try:
            mean = np.asarray(weights["input_mean"], dtype=np.float32)
            scale = np.asarray(weights["input_scale"], dtype=np.float32)
            depth = sum(1 for name in weights if name.startswith("w"))
            layers = [(np.asarray(weights[f"w{i}"], dtype=np.float32), np.asarray(weights[f"b{i}"], dtype=np.float32))
                      for i in range(depth)]
        except KeyError as error:
            raise ModelError(f"memory policy weights lack {error}") from None
        if depth == 0 or mean.shape != (N_INPUTS,) or layers[0][0].shape[0] != N_INPUTS or layers[-1][0].shape[1] != 1:
            raise ModelError(f"memory policy weights do not fit {N_INPUTS} inputs -> 1 score")
        for (w, b), (w_next, _) in zip(layers, layers[1:] + [(np.zeros((layers[-1][0].shape[1], 1)), None)]):
            if b.shape != (w.shape[1],) or w.shape[1] != w_next.shape[0]:
                raise ModelError("memory policy weights: layer shapes do not chain")
        # Fold the standardisation and the batch-context columns into the first layer:
        # (f[:, R] - mean(f[:, R])) @ W_r = f @ (W_r scattered to R) - mean(f) @ (W_r scattered), and
        # (age - oldest) * w_a + oldest * w_o = age * w_a + oldest * (w_o - w_a)
        w0, b0 = layers[0]
        w0_folded = w0 / scale[:, None]
        bias = b0 - mean @ w0_folded
        relative = np.zeros((N_FEATURES, w0.shape[1]), dtype=np.float64)
        np.add.at(relative, RELATIVE_INDEX, w0_folded[N_FEATURES:N_FEATURES + len(RELATIVE_INDEX)])
        to_oldest, oldest = w0_folded[N_INPUTS - 2], w0_folded[N_INPUTS - 1]
        direct = w0_folded[:N_FEATURES] + relative
        direct[AGE] += to_oldest
        self.first = (direct.astype(np.float32), relative.astype(np.float32), bias.astype(np.float32),
                      (oldest - to_oldest).astype(np.float32))
        self.layers = layers[1:]
        self.weights = {name: np.asarray(value, dtype=np.float32) for name, value in weights.items()}

    def predict(self, features: np.ndarray, oldest: float) -> np.ndarray:
        w, relative, bias, per_oldest = self.first
        mean = features.sum(axis=0) * np.float32(1.0 / len(features))  # not .mean(): its overhead shows here
        x = features @ w + (bias - mean @ relative + oldest * per_oldest)
        for layer_w, layer_b in self.layers:
            np.maximum(x, 0.0, out=x)
            x = x @ layer_w
            x += layer_b
        return x[:, 0]


class EvictionPolicy:
    """One MLP, or several experts (one per training cache size, tensors `e<j>.<name>`) with their
    `expert_context`: the typical log age of the oldest proposed candidate at that cache size. A
    batch is scored by the expert whose context is nearest its own oldest candidate's log age (one
    network trained on 1/5/10% at once lost to LRU at 1% on a dev trace; one per size did not)."""

    def __init__(self, weights: dict[str, np.ndarray], metadata: dict | None = None):
        self.metadata = dict(metadata or {})
        if "expert_context" in weights:
            self._context = np.asarray(weights["expert_context"], dtype=np.float32).reshape(-1)
            self._experts = []
            for j in range(len(self._context)):
                prefix = f"e{j}."
                part = {name[len(prefix):]: value for name, value in weights.items() if name.startswith(prefix)}
                if not part:
                    raise ModelError(f"memory policy weights lack expert {j}")
                self._experts.append(_Expert(part))
        else:
            self._context = np.zeros(1, dtype=np.float32)
            self._experts = [_Expert(weights)]
        self._context_list = [float(c) for c in self._context]
        self._weights = {name: np.asarray(value, dtype=np.float32) for name, value in weights.items()}
        self._blob = weights_bytes(self._weights)
        self.use_bytes = bool(self.metadata.get("use_bytes", False))
        self._size_column = FEATURE_NAMES.index("log_size")
        self.metadata["version"] = version_of(self._blob)

    @classmethod
    def from_experts(cls, experts: list[dict[str, np.ndarray]], contexts: list[float],
                     metadata: dict | None = None) -> "EvictionPolicy":
        if len(experts) == 1:
            return cls(experts[0], metadata)
        weights = {"expert_context": np.asarray(contexts, dtype=np.float32)}
        for j, expert in enumerate(experts):
            weights.update({f"e{j}.{name}": value for name, value in expert.items()})
        return cls(weights, metadata)

    @property
    def experts(self) -> int:
        return len(self._experts)

    def expert_weights(self, j: int) -> dict[str, np.ndarray]:
        return dict(self._experts[j].weights)

    @property
    def contexts(self) -> list[float]:
        return [float(c) for c in self._context]

    @property
    def version(self) -> str:
        return self.metadata["version"]

    @property
    def weights(self) -> dict[str, np.ndarray]:
        return dict(self._weights)

    def predict_log_distance(self, features: np.ndarray) -> np.ndarray:
        """(n,) predicted log1p(requests until the next access)."""
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != N_FEATURES:
            raise ModelError(f"features must be (n, {N_FEATURES}), got {features.shape}")
        oldest = float(features[:, AGE].max(initial=0.0))
        expert = self._experts[0]
        if len(self._experts) > 1:  # a few experts: choosing in Python beats numpy's per-call overhead
            distances = [abs(context - oldest) for context in self._context_list]
            expert = self._experts[distances.index(min(distances))]
        return expert.predict(features, oldest)

    def score(self, features: np.ndarray) -> np.ndarray:
        """(n,) float32, higher = evict first."""
        predicted = self.predict_log_distance(features)
        if self.use_bytes:
            predicted = predicted + np.asarray(features, dtype=np.float32)[:, self._size_column]
        return predicted.astype(np.float32, copy=False)

    def choose(self, key_ids: np.ndarray, features: np.ndarray, k: int) -> np.ndarray:
        """The k best victims among `key_ids` (best first)."""
        key_ids = np.asarray(key_ids)
        if len(key_ids) != len(features):
            raise ModelError(f"{len(key_ids)} key ids but {len(features)} feature rows")
        order = np.argsort(-self.score(features), kind="stable")
        return key_ids[order[:max(int(k), 0)]]

    def should_delete(self, score: float, kind: "str | int", size: int | None = None) -> bool:
        """Delete rather than demote: no predicted re-use within the delete horizon (DELETE_HORIZON
        requests) and the kind is cheap to recompute (keys.recompute_cost <= CHEAP_RECOMPUTE). `score` is
        this policy's score; in byte mode it includes log1p(size), which is taken out again (a value of
        unknown size is assumed to be SIZE_WHEN_UNKNOWN, so that the rule errs towards demoting)."""
        name = KIND_NAMES[kind] if isinstance(kind, (int, np.integer)) and 0 <= int(kind) < len(KIND_NAMES) else kind
        if not isinstance(name, str):
            raise ModelError(f"unknown kind {kind!r}")
        predicted = float(score)
        if self.use_bytes:
            predicted -= math.log1p(SIZE_WHEN_UNKNOWN if size is None else max(int(size), 1))
        horizon = self.metadata.get("delete_horizon", DELETE_HORIZON)
        return bool(predicted > math.log1p(horizon) and keys.recompute_cost(name) <= CHEAP_RECOMPUTE)

    # --- files ---------------------------------------------------------------------------------

    def save(self, directory: "str | Path") -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / WEIGHTS_FILE).write_bytes(self._blob)
        metadata = {**self.metadata, "model": MODEL, "artifact_format": WEIGHTS_FORMAT,
                    "artifact_sha256": hashlib.sha256(self._blob).hexdigest(), "feature_names": list(FEATURE_NAMES),
                    "relative_features": list(RELATIVE_FEATURES)}
        (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str, sort_keys=True))
        return directory

    @classmethod
    def from_blob(cls, blob: bytes, metadata: dict) -> "EvictionPolicy":
        version = metadata.get("version", "?")
        names = metadata.get("feature_names")
        if names is not None and tuple(names) != FEATURE_NAMES:
            raise ModelError(f"memory policy {version} was trained on other features ({len(names)} named); retrain it "
                             "with `algo memory train`")
        policy = cls(weights_from_bytes(blob, version), metadata)
        if metadata.get("version") not in (None, policy.version):
            raise ModelError(f"memory policy {version}: the weights' hash says {policy.version}; the files do not match")
        return policy

    @classmethod
    def load(cls, directory: "str | Path") -> "EvictionPolicy":
        directory = Path(directory)
        try:
            blob = (directory / WEIGHTS_FILE).read_bytes()
            metadata = json.loads((directory / METADATA_FILE).read_text())
        except FileNotFoundError as error:
            raise ModelError(f"{directory}: not a saved memory policy (need {WEIGHTS_FILE} and {METADATA_FILE})") from error
        except ValueError as error:
            raise ModelError(f"{directory}/{METADATA_FILE} is not JSON ({error})") from error
        return cls.from_blob(blob, metadata)

    @classmethod
    def shipped(cls, settings=None) -> "EvictionPolicy":
        """settings.memory.model_dir when set, else the policy shipped in streams/memory/data/policy/."""
        if settings is None:
            from streams.settings import get_settings

            settings = get_settings()
        model_dir = getattr(getattr(settings, "memory", None), "model_dir", "") or ""
        return cls.load(Path(model_dir) if model_dir else SHIPPED_DIR)

    # --- the registry (Postgres model_versions, the quant model's table) ---------------------------

    def register(self, settings) -> str:
        """Store this version and make it current (registering it again makes it current again)."""
        from psycopg.types.json import Jsonb

        metadata = {**self.metadata, "model": MODEL, "feature_names": list(FEATURE_NAMES)}
        data = metadata.get("data", {})

        def work(conn):
            conn.execute(
                """INSERT INTO model_versions (namespace, model, version, algorithm, seed, data_source, data_start,
                       data_end, bars, features, hyperparameters, metrics, metadata, artifact, artifact_sha256,
                       artifact_format)
                   VALUES (%s, %s, %s, %s, %s, %s, NULL, NULL, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (namespace, version) DO UPDATE SET registered_at = clock_timestamp()""",
                (settings.model_namespace, MODEL, self.version, metadata.get("algorithm", "imitation+ppo"),
                 metadata.get("seed"), str(data.get("source", "traces")), int(data.get("requests", 0)),
                 Jsonb(list(FEATURE_NAMES)), Jsonb(metadata.get("hyperparameters", {})),
                 Jsonb(metadata.get("metrics", {})), Jsonb(metadata), self._blob,
                 hashlib.sha256(self._blob).hexdigest(), WEIGHTS_FORMAT))
            return self.version

        return registry_call(settings, work)

    @classmethod
    def load_registered(cls, settings, version: str | None = None) -> "EvictionPolicy | None":
        """The pinned version (an error if unknown) or the current one (None if none is registered)."""
        row = version_row(settings, MODEL, version)
        if row is None:
            if version:
                raise ModelError(f"memory policy {version!r} is not registered in namespace {settings.model_namespace!r}")
            return None
        metadata, blob, artifact_format = row
        if metadata.get("model") != MODEL:
            raise ModelError(f"version {version!r} is a {metadata.get('model')!r} model, not a memory policy")
        if artifact_format != WEIGHTS_FORMAT:
            raise ModelError(f"memory policy {metadata.get('version')} is stored as {artifact_format}; refused")
        return cls.from_blob(bytes(blob), metadata)
