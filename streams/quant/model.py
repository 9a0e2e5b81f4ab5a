"""The Quant policy: PPO training, the saved artifact with its metadata, inference, the registry.

A trained policy is stored as its network's weights in safetensors (tensors only: loading them runs
no code, unlike a stable-baselines3 zip, whose parts are pickles) plus a JSON metadata dict: the
network's architecture and spaces (enough to rebuild it), data range, features, env and costs, seed,
hyper-parameters, metrics, library versions. Its version is content-addressed:
`quant-ppo-<first 12 hex of the weights' sha256>`. `register` stores both in Postgres
(sql/003_model_versions.sql, sql/004_model_weights_safetensors.sql); `fetch` rebuilds the current (most
recently registered) or a pinned version from them. Rows from before, SB3 zips, are never loaded.
Every version belongs to a namespace (settings.model_namespace: QUANT_MODEL_NAMESPACE, by default
ALGO_APP_ID; sql/005_model_namespace.sql): a process registers, lists and serves its own only, so a
test run's models never become current for the developer's quant worker.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from functools import cached_property
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from streams.errors import ModelError
from streams.model_registry import WEIGHTS_FORMAT, registry_call, version_row
from streams.quant.env import EnvConfig, MarketSeries, QuantTradingEnv
from streams.quant.features import FeatureSpec

MODEL = "quant"
WEIGHTS_FILE = "model.safetensors"
# activation functions a stored architecture may name (looked up here, never imported by name)
_ACTIVATIONS = ("Tanh", "ReLU", "LeakyReLU", "ELU", "GELU", "SiLU")
ACTIONS = {-1.0: "SELL", 0.0: "HOLD", 1.0: "BUY"}
PPO_DEFAULTS: dict[str, Any] = {
    "learning_rate": 3e-4, "n_steps": 1024, "batch_size": 256, "n_epochs": 10, "gamma": 0.99,
    "gae_lambda": 0.95, "clip_range": 0.2, "ent_coef": 0.01, "vf_coef": 0.5, "max_grad_norm": 0.5,
    "net_arch": [64, 64],
}


def _torch():
    import torch

    torch.set_num_threads(1)  # a 64x64 MLP runs fastest on one thread; the other core serves Kafka
    return torch


def effective_hyperparameters(timesteps: int, overrides: dict | None = None) -> dict:
    """PPO_DEFAULTS with `overrides`; a run shorter than one rollout collects only `timesteps` steps."""
    hyper = {**PPO_DEFAULTS, **(overrides or {})}
    unknown = sorted(set(hyper) - set(PPO_DEFAULTS))
    if unknown:
        raise ModelError(f"unknown PPO hyper-parameter(s): {', '.join(unknown)}")
    hyper["n_steps"] = max(2, min(int(hyper["n_steps"]), int(timesteps)))
    hyper["batch_size"] = min(int(hyper["batch_size"]), hyper["n_steps"])
    return hyper


def train_policy(series: list[MarketSeries], spec: FeatureSpec, config: EnvConfig, *, timesteps: int, seed: int,
                 hyperparameters: dict | None = None, checkpoint_dir: Path | None = None,
                 checkpoint_every: int = 0, progress_bar: bool = False):
    """A PPO policy trained on random windows of `series`; deterministic for a seed on one thread."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import CheckpointCallback
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.utils import set_random_seed

    _torch()
    if timesteps < 1:
        raise ModelError(f"timesteps must be >= 1, got {timesteps}")
    hyper = effective_hyperparameters(timesteps, hyperparameters)
    set_random_seed(seed)
    env = Monitor(QuantTradingEnv(series, spec, config))
    net = list(hyper.pop("net_arch"))
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0,
                policy_kwargs={"net_arch": {"pi": net, "vf": net}}, **hyper)
    model.set_logger(Logger(folder=None, output_formats=[]))  # SB3's default makes an empty temp dir per run
    callbacks = []
    if checkpoint_dir is not None and checkpoint_every > 0:
        callbacks.append(CheckpointCallback(save_freq=checkpoint_every, save_path=str(checkpoint_dir),
                                            name_prefix="ppo"))
    with warnings.catch_warnings():  # SB3's progress bar is tqdm.rich, which warns that it is experimental
        warnings.filterwarnings("ignore", message="rich is experimental")
        model.learn(total_timesteps=timesteps, callback=callbacks or None, progress_bar=progress_bar)
    return model


def _space(space) -> dict:
    import gymnasium as gym

    if isinstance(space, gym.spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": space.low.tolist(), "high": space.high.tolist()}
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n)}
    raise ModelError(f"cannot describe a {type(space).__name__} space")


def _space_from(description: dict):
    import gymnasium as gym

    kind = description.get("type")
    if kind == "Box":
        return gym.spaces.Box(np.asarray(description["low"], dtype=description["dtype"]),
                              np.asarray(description["high"], dtype=description["dtype"]),
                              shape=tuple(description["shape"]), dtype=description["dtype"])
    if kind == "Discrete":
        return gym.spaces.Discrete(int(description["n"]))
    raise ModelError(f"unknown space type {kind!r}")


def architecture_of(network) -> dict:
    """What rebuilds `network` (an SB3 ActorCriticPolicy) without its code: class, layers, spaces."""
    arch = network.net_arch
    return {"policy": "ActorCriticPolicy",
            "net_arch": {"pi": list(arch["pi"]), "vf": list(arch["vf"])} if isinstance(arch, dict) else list(arch),
            "activation": network.activation_fn.__name__,
            "share_features_extractor": bool(network.share_features_extractor),
            "observation_space": _space(network.observation_space), "action_space": _space(network.action_space)}


def build_network(architecture: dict):
    """A fresh ActorCriticPolicy of `architecture` (weights random until loaded)."""
    import torch
    from stable_baselines3.common.policies import ActorCriticPolicy

    try:
        if architecture["policy"] != "ActorCriticPolicy":
            raise ModelError(f"unknown policy class {architecture['policy']!r}")
        if architecture["activation"] not in _ACTIVATIONS:
            raise ModelError(f"unknown activation {architecture['activation']!r}")
        network = ActorCriticPolicy(_space_from(architecture["observation_space"]),
                                    _space_from(architecture["action_space"]), lr_schedule=lambda _: 0.0,
                                    net_arch=architecture["net_arch"],
                                    activation_fn=getattr(torch.nn, architecture["activation"]),
                                    share_features_extractor=architecture["share_features_extractor"])
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(f"policy architecture {architecture!r} is incomplete or malformed ({error})") from error
    network.set_training_mode(False)
    return network


def weights_bytes(network) -> bytes:
    """The network's weights as safetensors bytes (deterministic for the same weights)."""
    from safetensors.torch import save

    return save({name: tensor.detach().cpu().contiguous().clone() for name, tensor in network.state_dict().items()},
                metadata={"format": "algo-quant-policy"})


def load_weights(network, weights: bytes, version: str) -> None:
    """Load safetensors `weights` into `network`; anything else (a pickle, an SB3 zip) is refused
    before a byte of it is interpreted as code."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    if weights[:2] == b"PK":
        raise ModelError(f"model {version}: the weights are a zip (an SB3 artifact holding pickles), not safetensors; "
                         "refused: retrain it with `algo quant train`")
    try:
        tensors = load(weights)
    except (SafetensorError, ValueError, OverflowError) as error:
        raise ModelError(f"model {version}: the weights are not a safetensors blob ({error}); refused") from error
    try:
        network.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        raise ModelError(f"model {version}: the weights do not fit the architecture in its metadata ({error})") from error


@dataclass
class QuantPolicy:
    """A policy network (an SB3 ActorCriticPolicy) and its metadata; inference on CPU."""

    network: Any
    metadata: dict

    @property
    def version(self) -> str:
        return self.metadata["version"]

    @cached_property  # read on every bar the agent scores: parse the metadata once
    def spec(self) -> FeatureSpec:
        return FeatureSpec.from_dict(self.metadata["features"])

    @cached_property
    def env_config(self) -> EnvConfig:
        return EnvConfig.from_dict(self.metadata["env"])

    @property
    def positions(self) -> tuple[float, ...]:
        return self.env_config.positions

    @classmethod
    def from_model(cls, model, spec: FeatureSpec, config: EnvConfig, version: str | None = None) -> "QuantPolicy":
        """A just-trained model with the metadata inference needs (version: its artifact's, by default)."""
        version = version or version_of(artifact_bytes(model))
        return cls(model.policy, {"version": version, "features": spec.as_dict(), "env": config.as_dict(),
                                  "policy": architecture_of(model.policy)})

    @classmethod
    def from_artifact(cls, artifact: bytes, metadata: dict) -> "QuantPolicy":
        """Rebuild the network from the architecture in `metadata` and load the safetensors `artifact`
        into it: nothing from the stored row is unpickled or executed."""
        _torch()
        version = metadata.get("version", "?")
        architecture = metadata.get("policy")
        if not isinstance(architecture, dict):
            raise ModelError(f"model {version}: no policy architecture in its metadata (saved before weights moved "
                             "to safetensors): retrain it with `algo quant train`")
        network = build_network(architecture)
        load_weights(network, artifact, version)
        return cls(network, metadata)

    @classmethod
    def load(cls, directory: str | Path) -> "QuantPolicy":
        metadata, artifact = read_saved(directory)
        return cls.from_artifact(artifact, metadata)

    def probabilities(self, observations: np.ndarray) -> np.ndarray:
        """(n, actions) action probabilities for (n, obs) observations."""
        torch = _torch()
        obs = torch.as_tensor(np.asarray(observations, dtype=np.float32).reshape(-1, self.spec.size))
        with torch.no_grad():
            return self.network.get_distribution(obs).distribution.probs.numpy().astype(np.float64)

    def decide(self, features: np.ndarray, position: float) -> tuple[float, float, np.ndarray]:
        """(target sign, confidence = the chosen action's probability, all probabilities)."""
        probs = self.probabilities(np.append(features, position))[0]
        action = int(np.argmax(probs))
        return self.positions[action], float(probs[action]), probs

    def rollout(self, features: np.ndarray, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """The policy's target signs for bars start..end-1, each seeing its own previous position
        (flat at `start`), and the chosen actions' probabilities. One batched forward pass per
        possible position, then a sequential walk."""
        rows = features[start:end]
        if len(rows) == 0:
            return np.zeros(0), np.zeros(0)
        if not np.isfinite(rows).all():
            raise ModelError(f"features undefined in bars {start}..{end - 1} (warm-up)")
        positions = self.positions
        tables = [self.probabilities(np.hstack([rows, np.full((len(rows), 1), p)])) for p in positions]
        index_of = {p: i for i, p in enumerate(positions)}
        signs, confidence = np.empty(len(rows)), np.empty(len(rows))
        current = 0.0
        for t in range(len(rows)):
            probs = tables[index_of.get(current, index_of.get(0.0, 0))][t]
            action = int(np.argmax(probs))
            current = positions[action]
            signs[t], confidence[t] = current, probs[action]
        return signs, confidence


def artifact_bytes(model) -> bytes:
    """What is stored and hashed for a trained model: its policy network's weights (safetensors)."""
    return weights_bytes(model.policy)


def version_of(artifact: bytes) -> str:
    return f"{MODEL}-ppo-{hashlib.sha256(artifact).hexdigest()[:12]}"


def library_versions() -> dict[str, str]:
    import gymnasium
    import stable_baselines3
    import torch

    return {"stable_baselines3": stable_baselines3.__version__, "torch": torch.__version__,
            "gymnasium": gymnasium.__version__, "numpy": np.__version__}


def build_metadata(*, artifact: bytes, architecture: dict, seed: int, timesteps: int, hyperparameters: dict,
                   spec: FeatureSpec, config: EnvConfig, source: str, symbols: list[str], start: str | None,
                   end: str | None, bars: int, metrics: dict) -> dict:
    return {
        "model": MODEL, "algorithm": "PPO", "version": version_of(artifact),
        "artifact_format": WEIGHTS_FORMAT, "artifact_sha256": hashlib.sha256(artifact).hexdigest(),
        "policy": architecture,
        "created_at": datetime.now(timezone.utc).isoformat(), "seed": seed, "timesteps": timesteps,
        "hyperparameters": effective_hyperparameters(timesteps, hyperparameters),
        "features": {**spec.as_dict(), "names": spec.names(), "warmup": spec.warmup},
        "env": config.as_dict(),
        "data": {"source": source, "symbols": symbols, "start": start, "end": end, "bars": bars},
        "metrics": metrics, "libraries": library_versions(),
    }


def save(directory: Path, artifact: bytes, metadata: dict) -> Path:
    """<directory>/model.safetensors (the weights) and metadata.json (everything else)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / WEIGHTS_FILE).write_bytes(artifact)
    (directory / "metadata.json").write_text(json.dumps(metadata, indent=2, default=str))
    return directory


def read_saved(directory: str | Path) -> tuple[dict, bytes]:
    """The metadata and weights that `save` wrote."""
    directory = Path(directory)
    try:
        metadata = json.loads((directory / "metadata.json").read_text())
        artifact = (directory / WEIGHTS_FILE).read_bytes()
    except FileNotFoundError as error:
        old = " (model.zip is the old pickled format: retrain)" if (directory / "model.zip").exists() else ""
        raise ModelError(f"{directory}: not a saved model (need {WEIGHTS_FILE} and metadata.json){old}") from error
    except ValueError as error:
        raise ModelError(f"{directory}/metadata.json is not JSON ({error})") from error
    return metadata, artifact


# --- the registry (Postgres) -------------------------------------------------------------------

def register(settings, artifact: bytes, metadata: dict) -> str:
    """Stores a version and makes it the current one; the same artifact is stored once (registering
    it again only makes it current again: a rollback). Returns the version."""
    from psycopg.types.json import Jsonb

    data = metadata["data"]

    def work(conn):
        conn.execute(
            """INSERT INTO model_versions (namespace, model, version, algorithm, seed, data_source, data_start,
                   data_end, bars, features, hyperparameters, metrics, metadata, artifact, artifact_sha256,
                   artifact_format)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (namespace, version) DO UPDATE SET registered_at = clock_timestamp()""",
            (settings.model_namespace, metadata["model"], metadata["version"], metadata["algorithm"], metadata["seed"], data["source"],
             data["start"], data["end"], data["bars"], Jsonb(metadata["features"]),
             Jsonb(metadata["hyperparameters"]), Jsonb(metadata["metrics"]), Jsonb(metadata), artifact,
             metadata["artifact_sha256"], WEIGHTS_FORMAT))
        return metadata["version"]

    return registry_call(settings, work)


def list_versions(settings, model: str = MODEL) -> list[dict]:
    def work(conn):
        rows = conn.execute(
            """SELECT version_id, version, registered_at, created_at, seed, data_source, data_start, data_end, bars,
                      metrics, length(artifact), artifact_format
               FROM model_versions WHERE namespace = %s AND model = %s ORDER BY registered_at DESC, version_id DESC""",
            (settings.model_namespace, model)).fetchall()
        names = ("id", "version", "registered_at", "created_at", "seed", "data_source", "data_start", "data_end",
                 "bars", "metrics", "artifact_bytes", "artifact_format")
        return [dict(zip(names, row)) for row in rows]

    return registry_call(settings, work)


def current_version(settings, model: str = MODEL) -> str | None:
    def work(conn):
        row = conn.execute("SELECT version FROM model_versions WHERE namespace = %s AND model = %s "
                           "AND artifact_format = %s ORDER BY registered_at DESC, version_id DESC LIMIT 1",
                           (settings.model_namespace, model, WEIGHTS_FORMAT)).fetchone()
        return row[0] if row else None

    return registry_call(settings, work)


def fetch(settings, version: str | None = None, model: str = MODEL) -> QuantPolicy | None:
    """The pinned version (an error if unknown) or the current one (None if none is registered),
    rebuilt from its safetensors weights and JSON metadata; rows in the old pickled format are refused."""
    row = version_row(settings, model, version)
    if row is None:
        if version:
            raise ModelError(f"model version {version!r} is not registered in namespace {settings.model_namespace!r} "
                             "(QUANT_MODEL_NAMESPACE); see `algo quant versions`")
        return None
    metadata, artifact, artifact_format = row
    if artifact_format != WEIGHTS_FORMAT:
        raise ModelError(f"model {metadata.get('version', version)} is stored as {artifact_format} (pickled parts), "
                         "which is never loaded: retrain it with `algo quant train`")
    return QuantPolicy.from_artifact(bytes(artifact), metadata)
