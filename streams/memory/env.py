"""A gymnasium env that replays an access trace through a cache, one step per eviction decision, and
PPO fine-tuning (stable-baselines3) of the imitation policy in it.

Step: the cache is over capacity; the observation is the KeyTable features of `candidates` proposed
keys (the LRU tail plus a uniform sample of the cache, as simulator.py proposes them; shape
(candidates, N_FEATURES)); the action is the index of the candidate to evict (to the cold tier).
The env then replays requests until the next eviction is needed. Reward, per replayed request (the
seed's): +1 for a hit; for a miss -1 - MISS_COST_WEIGHT * cost, where cost is the miss's latency in
cold-read units: 1 for a key the cache evicted before (it is read back from the cold tier) and the
kind's keys.recompute_cost for a key never cached (it is computed). The replay runs over
requests [0, stop) and wraps around with a fresh cache; an episode is `episode_decisions` steps.

The PPO policy (CandidatePolicy) scores every candidate with the SAME MLP as model.EvictionPolicy
(on the same batch-relative inputs), so its logits are permutation-equivariant and it starts as the
imitation policy; the value head reads the mean-pooled hidden layer.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

import gymnasium as gym

from streams.errors import DataError
from streams.memory import keys
from streams.memory.features import KIND_NAMES, N_FEATURES, KeyTable
from streams.memory.model import AGE, RELATIVE_INDEX
from streams.memory.simulator import CANDIDATES_DEFAULT, TAIL_FRACTION
from streams.memory.trace import Trace

MISS_COST_WEIGHT = 0.1
EPISODE_DECISIONS = 256
PPO_SETTINGS = {"learning_rate": 3e-5, "n_steps": 512, "batch_size": 128, "n_epochs": 4, "gamma": 0.99,
                "gae_lambda": 0.95, "clip_range": 0.1, "ent_coef": 0.0, "vf_coef": 0.5, "max_grad_norm": 0.5}
_RECOMPUTE = np.array([keys.recompute_cost(name) for name in KIND_NAMES], dtype=np.float64)


class EvictionEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, trace: Trace, capacity: int, *, stop: int | None = None, use_bytes: bool = False,
                 candidates: int = CANDIDATES_DEFAULT, episode_decisions: int = EPISODE_DECISIONS, seed: int = 0):
        super().__init__()
        self.trace = trace
        self.stop = len(trace) if stop is None else int(stop)
        if not 0 < self.stop <= len(trace):
            raise DataError(f"env stop {self.stop} outside the trace's {len(trace)} requests")
        if capacity < 1 or candidates < 2:
            raise DataError(f"env needs capacity >= 1 and candidates >= 2, got {capacity} and {candidates}")
        self.capacity = int(capacity)
        self.candidates = int(candidates)
        self.episode_decisions = int(episode_decisions)
        self.use_bytes = use_bytes
        # every feature is a log1p of a non-negative number or a one-hot bit
        self.observation_space = gym.spaces.Box(low=0.0, high=64.0, shape=(self.candidates, N_FEATURES),
                                                dtype=np.float32)
        self.action_space = gym.spaces.Discrete(self.candidates)
        self._ids = trace.ids[:self.stop].tolist()
        self._sizes = (trace.byte_sizes() if use_bytes else np.ones(len(trace), np.int64))[:self.stop].tolist()
        self._kinds = trace.key_kinds().tolist()
        self._vol = trace.volatility[:self.stop].tolist()
        self._rng = np.random.default_rng(seed)
        self._fresh_cache()

    def _fresh_cache(self) -> None:
        self.table = KeyTable(self.trace.distinct())
        self.lru: OrderedDict[int, int] = OrderedDict()
        self.members: list[int] = []
        self.position: dict[int, int] = {}
        self.ever_cached: set[int] = set()
        self.used = 0
        self.now = 0
        self.proposals = np.zeros(self.candidates, dtype=np.int64)

    def request_reward(self, hit: bool, key: int) -> float:
        """The reward of one request (see the module docstring)."""
        if hit:
            return 1.0
        cost = 1.0 if key in self.ever_cached else float(_RECOMPUTE[self._kinds[key]])
        return -1.0 - MISS_COST_WEIGHT * cost

    def _advance(self) -> float:
        """Replay requests until the cache is over capacity (with enough keys to propose); the reward."""
        reward = 0.0
        wraps = 0
        while True:
            if self.now >= self.stop:
                wraps += 1
                if wraps > 1:  # a whole pass without one: the cache never holds `candidates` keys
                    raise DataError(f"no eviction decision at capacity {self.capacity}: the cache never holds "
                                    f"{self.candidates} keys to choose between")
                self._fresh_cache()
            key = self._ids[self.now]
            size = self._sizes[self.now]
            hit = key in self.lru
            reward += self.request_reward(hit, key)
            self.table.access(key, self.now, size, self._kinds[key], self._vol[self.now])
            self.now += 1
            if hit:
                self.lru.move_to_end(key)
                self.used += size - self.lru[key]
                self.lru[key] = size
            elif size <= self.capacity:
                self.lru[key] = size
                self.position[key] = len(self.members)
                self.members.append(key)
                self.ever_cached.add(key)
                self.used += size
            if self.used > self.capacity:
                if len(self.lru) >= self.candidates:
                    return reward
                while self.used > self.capacity:  # too few keys to propose from: plain LRU
                    self._evict(next(iter(self.lru)))

    def _evict(self, key: int) -> None:
        self.used -= self.lru.pop(key)
        at = self.position.pop(key)
        last = self.members.pop()
        if last != key:
            self.members[at] = last
            self.position[last] = at

    def _observe(self) -> np.ndarray:
        tail = max(1, int(self.candidates * TAIL_FRACTION))
        picks = self._rng.integers(0, len(self.members), self.candidates)
        proposals = np.fromiter((self.members[i] for i in picks), dtype=np.int64, count=self.candidates)
        for position, key in enumerate(self.lru):
            if position == tail:
                break
            proposals[position] = key
        self.proposals = proposals
        return self.table.features(proposals, self.now)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            self._fresh_cache()
        self.decisions = 0
        reward = self._advance()  # the requests before the first decision: no action earned it
        return self._observe(), {"reward_before_first_decision": reward}

    def step(self, action):
        victim = int(self.proposals[int(action)])
        if victim in self.lru:  # a duplicate proposal may have gone already
            self._evict(victim)
        reward = 0.0
        if self.used > self.capacity:  # still over (byte mode): stay on this decision point
            observation = self._observe()
        else:
            reward = self._advance()
            observation = self._observe()
        self.decisions += 1
        return observation, reward, False, self.decisions >= self.episode_decisions, {}


# --- PPO with the candidate-scoring policy ------------------------------------------------------

def _candidate_policy_class():
    import torch
    from stable_baselines3.common.policies import ActorCriticPolicy

    class CandidateScorer(torch.nn.Module):
        """Per-candidate MLP scores (the actor's logits) and a pooled hidden layer (the critic's input)."""

        def __init__(self, candidates: int, init: dict):
            super().__init__()
            self.candidates = candidates
            self.register_buffer("mean", torch.as_tensor(init["input_mean"]))
            self.register_buffer("scale", torch.as_tensor(init["input_scale"]))
            self.register_buffer("relative", torch.as_tensor(RELATIVE_INDEX))
            depth = sum(1 for name in init if name.startswith("w"))
            self.linears = torch.nn.ModuleList()
            for i in range(depth):
                w = torch.as_tensor(init[f"w{i}"])
                layer = torch.nn.Linear(w.shape[0], w.shape[1])
                with torch.no_grad():
                    layer.weight.copy_(w.T)
                    layer.bias.copy_(torch.as_tensor(init[f"b{i}"]))
                self.linears.append(layer)
            self.latent_dim_pi = candidates
            self.latent_dim_vf = self.linears[-1].in_features

        def _run(self, flat):
            f = flat.reshape(-1, self.candidates, N_FEATURES)
            rel = f[:, :, self.relative]
            age = f[:, :, AGE:AGE + 1]
            oldest = age.max(dim=1, keepdim=True).values.clamp(min=0.0)
            x = torch.cat([f, rel - rel.mean(dim=1, keepdim=True), age - oldest, oldest.expand_as(age)], dim=2)
            x = (x - self.mean) / self.scale
            for layer in self.linears[:-1]:
                x = torch.relu(layer(x))
            return self.linears[-1](x).squeeze(-1), x.mean(dim=1)

        def forward(self, flat):
            return self._run(flat)

        def forward_actor(self, flat):
            return self._run(flat)[0]

        def forward_critic(self, flat):
            return self._run(flat)[1]

    class CandidatePolicy(ActorCriticPolicy):
        def __init__(self, *args, init_weights: dict, **kwargs):
            self._init_weights = init_weights
            super().__init__(*args, **kwargs)

        def _build_mlp_extractor(self) -> None:
            self.mlp_extractor = CandidateScorer(self.action_space.n, self._init_weights)

        def _build(self, lr_schedule) -> None:
            super()._build(lr_schedule)
            self.action_net = torch.nn.Identity()  # the logits ARE the per-candidate scores
            self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    return CandidatePolicy


def policy_weights(model) -> dict[str, np.ndarray]:
    """The fine-tuned per-candidate MLP of a PPO model, as EvictionPolicy weights."""
    scorer = model.policy.mlp_extractor
    weights = {"input_mean": scorer.mean.numpy().copy(), "input_scale": scorer.scale.numpy().copy()}
    for i, layer in enumerate(scorer.linears):
        weights[f"w{i}"] = layer.weight.detach().numpy().T.copy()
        weights[f"b{i}"] = layer.bias.detach().numpy().copy()
    return weights


def fine_tune(trace: Trace, init_weights: dict, capacities: list[int], *, stop: int, use_bytes: bool, seed: int,
              timesteps: int, candidates: int = CANDIDATES_DEFAULT) -> tuple[dict, dict]:
    """PPO on one env per capacity, starting from `init_weights`; (fine-tuned weights, summary)."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.utils import set_random_seed
    from stable_baselines3.common.vec_env import DummyVecEnv

    torch.set_num_threads(1)
    set_random_seed(seed)
    envs = DummyVecEnv([
        (lambda capacity=capacity, j=j: Monitor(EvictionEnv(trace, capacity, stop=stop, use_bytes=use_bytes,
                                                            candidates=candidates, seed=seed + j)))
        for j, capacity in enumerate(capacities)])
    settings = dict(PPO_SETTINGS)
    per_env = max(8, min(settings["n_steps"], timesteps // max(1, len(capacities))))
    settings["n_steps"] = per_env
    settings["batch_size"] = min(settings["batch_size"], per_env * len(capacities))
    model = PPO(_candidate_policy_class(), envs, seed=seed, device="cpu", verbose=0,
                policy_kwargs={"init_weights": init_weights, "ortho_init": False}, **settings)
    model.set_logger(Logger(folder=None, output_formats=[]))
    model.learn(total_timesteps=int(timesteps))
    rewards = [info["r"] for info in model.ep_info_buffer] if model.ep_info_buffer else []
    return policy_weights(model), {"timesteps": int(timesteps), "ppo": {**settings},
                                   "mean_episode_reward": float(np.mean(rewards)) if rewards else None}
