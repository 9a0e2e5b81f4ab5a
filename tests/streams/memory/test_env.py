"""EvictionEnv: a valid gymnasium env whose reward is exactly its definition, and a PPO policy whose
logits are the imitation MLP's per-candidate scores."""
from __future__ import annotations

import numpy as np
from gymnasium.utils.env_checker import check_env

from streams.memory import keys
from streams.memory.env import MISS_COST_WEIGHT, EvictionEnv, _candidate_policy_class, policy_weights
from streams.memory.trace import trace_from_requests
from tests.streams.memory.test_model import random_weights


def small_trace(n: int = 3000, seed: int = 5):
    rng = np.random.default_rng(seed)
    ids = rng.zipf(1.2, n) % 300
    names = [f"backtest:S1:{k}" if k % 3 == 0 else f"bars:S2:{k}" for k in ids]
    return trace_from_requests(np.arange(n, dtype=float), names, np.ones(n, dtype=np.int64))


def test_check_env_passes():
    check_env(EvictionEnv(small_trace(), 40, candidates=16, episode_decisions=20), skip_render_check=True)


def test_reward_matches_its_definition():
    """Replay the env's own evictions through an independent cache model and recompute the reward
    from the definition: +1 per hit, -1 - w * cost per miss (cost 1 for a key cached before, else
    the kind's recompute cost)."""
    trace = small_trace()
    env = EvictionEnv(trace, 40, candidates=16, episode_decisions=10_000, seed=1)
    _, info = env.reset(seed=1)
    total = info["reward_before_first_decision"]
    rng = np.random.default_rng(0)
    evicted: list[int] = []
    for _ in range(300):
        action = int(rng.integers(16))
        victim = int(env.proposals[action])
        if victim in env.lru:
            evicted.append(victim)
        _, reward, *_ = env.step(action)
        total += reward
    cache: set[int] = set()
    ever: set[int] = set()
    victims = iter(evicted)
    expected = 0.0
    for index in range(env.now):
        key = int(trace.ids[index])
        if key in cache:
            expected += 1.0
        else:
            cost = 1.0 if key in ever else keys.recompute_cost(keys.kind_of(trace.keys[key]))
            expected -= 1.0 + MISS_COST_WEIGHT * cost
            cache.add(key)
            ever.add(key)
        if index < env.now - 1:  # the last request left the decision the env waits on
            while len(cache) > 40:
                cache.discard(next(victims))
    assert next(victims, None) is None
    assert abs(total - expected) < 1e-9
    assert env.request_reward(True, 0) == 1.0


def test_the_ppo_policy_logits_are_the_imitation_scores():
    import torch
    from stable_baselines3 import PPO

    from streams.memory.model import EvictionPolicy

    weights = random_weights()
    env = EvictionEnv(small_trace(), 40, candidates=16)
    model = PPO(_candidate_policy_class(), env, n_steps=16, batch_size=16, seed=0, device="cpu",
                policy_kwargs={"init_weights": weights, "ortho_init": False})
    obs, _ = env.reset(seed=0)
    with torch.no_grad():
        logits = model.policy.get_distribution(torch.as_tensor(obs[None])).distribution.logits[0].numpy()
    scores = EvictionPolicy(weights).score(obs)
    np.testing.assert_allclose(logits - logits.max(), scores - scores.max(), rtol=1e-4, atol=1e-4)
    exported = policy_weights(model)
    assert set(exported) == set(weights)
    np.testing.assert_allclose(EvictionPolicy(exported).score(obs), scores, rtol=1e-5, atol=1e-5)
