"""Training the eviction policy: imitation of Belady (DAgger), then PPO fine-tuning (env.py).

1. Imitation. The training part [0, end) is split: requests [0, validate_from) give training data and
   [validate_from, end) (the last VALIDATION_FRACTION) is the validation slice every stage is judged
   on. Simulating the cache at each requested capacity, each scored batch of candidates becomes rows
   (features, log1p(requests until the key's next access)): Belady evicts the farthest next access,
   so regressing it and evicting the highest prediction imitates Belady among the proposals. Round 0
   replays under sampled LRU; later rounds (DAgger) replay under the current model, so the model
   learns the cache states its own choices lead to. Next accesses past validate_from are censored
   (counted as "far"), so nothing of the validation slice leaks into training.
2. PPO (stable-baselines3) on env.EvictionEnv, whose per-candidate logits are the imitation MLP
   (permutation-equivariant), with the seed's reward: +1 per hit, -1 per miss (latency and recompute
   cost weighted). The fine-tuned weights are kept only if they do better on the validation slice.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from streams.errors import DataError, ModelError
from streams.memory.features import FEATURE_NAMES, N_FEATURES
from streams.memory.model import AGE, N_INPUTS, EvictionPolicy, network_inputs
from streams.memory.simulator import CANDIDATES_DEFAULT, DEFAULT_QUEUE, simulate
from streams.memory.trace import Trace

VALIDATION_FRACTION = 0.2
HIDDEN = (64, 32)
DAGGER_ROUNDS = 3
ROWS_PER_CAPACITY = 200_000  # about the candidate rows collected per round and capacity (60k: lost to LRU at 1% on a dev trace)
EPOCHS = 4
BATCH = 1024
MIN_TRAINING_ROWS = 64  # candidate rows at one size; fewer: too few evictions to learn from
LEARNING_RATE = 2e-3
CANDIDATES = CANDIDATES_DEFAULT  # train on the batches the simulator serves

Progress = Callable[[str], None]


def _torch():
    import torch

    torch.set_num_threads(1)
    return torch


def collect(trace: Trace, behaviour, capacity: int, *, start: int, stop: int, use_bytes: bool, seed: int,
            max_rows: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(network inputs, log-distance labels, median log age of the batches' oldest candidate) of the
    batches scored while simulating [0, stop) under `behaviour`; only decisions at or after `start`."""
    next_access = trace.next_access()
    far = float(np.log1p(2.0 * len(trace)))
    rows: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    # about how many batches this run scores: keep every k-th so rows stay within max_rows
    expected = max(1.0, (stop - start) * 0.5 / DEFAULT_QUEUE * CANDIDATES / max(max_rows, 1))  # miss ratio ~0.5
    keep_every = max(1, int(expected))
    count = [0]

    def recorder(now, key_ids, features, last):
        count[0] += 1
        if now < start or count[0] % keep_every:
            return
        following = next_access[last]
        known = (following >= 0) & (following < stop)
        labels.append(np.where(known, np.log1p(np.maximum(following - now, 1)), far).astype(np.float32))
        rows.append(features)

    simulate(trace, behaviour, capacity, use_bytes=use_bytes, count_from=0, end=stop, seed=seed,
             candidates=CANDIDATES, recorder=recorder)
    if not rows:
        return np.zeros((0, N_INPUTS), np.float32), np.zeros(0, np.float32), 0.0
    # inputs are batch-relative: build them per batch before concatenating
    inputs = np.concatenate([network_inputs(batch) for batch in rows])
    oldest = float(np.median([batch[:, AGE].max() for batch in rows]))
    return inputs, np.concatenate(labels), oldest


def fit(inputs: np.ndarray, labels: np.ndarray, *, seed: int, init: dict | None = None,
        epochs: int = EPOCHS) -> dict[str, np.ndarray]:
    """An MLP regressing labels from inputs (Huber loss); returns numpy weights for EvictionPolicy."""
    torch = _torch()
    torch.manual_seed(seed)
    mean = inputs.mean(axis=0)
    scale = inputs.std(axis=0)
    scale = np.where(scale < 1e-6, 1.0, scale).astype(np.float32)
    if init is not None:
        mean, scale = init["input_mean"], init["input_scale"]
    net = build_torch_mlp(init)
    x = torch.as_tensor((inputs - mean) / scale, dtype=torch.float32)
    y = torch.as_tensor(labels, dtype=torch.float32)
    optimiser = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
    generator = torch.Generator().manual_seed(seed)
    batch_size = min(BATCH, len(x))  # a small trace gives fewer rows than one batch: train on all of them
    steps = epochs * max(1, len(x) // batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x) - batch_size + 1, batch_size):
            batch = order[i:i + batch_size]
            loss = torch.nn.functional.huber_loss(net(x[batch]).squeeze(-1), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            scheduler.step()
    return torch_to_weights(net, mean, scale)


def build_torch_mlp(init: dict | None = None):
    torch = _torch()
    sizes = (N_INPUTS, *HIDDEN, 1)
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    if init is not None:
        linears = [layer for layer in net if isinstance(layer, torch.nn.Linear)]
        with torch.no_grad():
            for i, layer in enumerate(linears):
                layer.weight.copy_(torch.as_tensor(init[f"w{i}"]).T)
                layer.bias.copy_(torch.as_tensor(init[f"b{i}"]))
    return net


def torch_to_weights(net, mean: np.ndarray, scale: np.ndarray) -> dict[str, np.ndarray]:
    import torch

    linears = [layer for layer in net if isinstance(layer, torch.nn.Linear)]
    weights = {"input_mean": np.asarray(mean, np.float32), "input_scale": np.asarray(scale, np.float32)}
    for i, layer in enumerate(linears):
        weights[f"w{i}"] = layer.weight.detach().numpy().T.copy()
        weights[f"b{i}"] = layer.bias.detach().numpy().copy()
    return weights


def validation_miss_ratio(trace: Trace, policy, capacities: list[int], *, validate_from: int, end: int,
                          use_bytes: bool, seed: int) -> float:
    """Mean over capacities of the request miss ratio on [validate_from, end), warmed on [0, validate_from)
    (request miss ratios in byte mode too: the objective the evaluation reports and gap_closed uses)."""
    ratios = []
    for capacity in capacities:
        result = simulate(trace, policy, capacity, use_bytes=use_bytes, count_from=validate_from, end=end,
                          seed=seed, candidates=CANDIDATES)
        ratios.append(result.miss_ratio)
    return float(np.mean(ratios))


def train_policy(trace: Trace, end: int, capacities: list[int], *, use_bytes: bool, seed: int,
                 rl_timesteps: int, progress: Progress | None = None) -> tuple[EvictionPolicy, dict]:
    """A policy trained on requests [0, end) only; the report says what each stage gave on the
    validation slice (the last VALIDATION_FRACTION of [0, end))."""
    say = progress or (lambda message: None)
    if not 0 < end <= len(trace):
        raise DataError(f"training end {end} outside the trace's {len(trace)} requests")
    capacities = sorted({int(c) for c in capacities if int(c) >= 1})
    if not capacities:
        raise DataError("train_policy needs at least one capacity >= 1")
    validate_from = int(end * (1.0 - VALIDATION_FRACTION))
    if validate_from < 1000 or end - validate_from < 200:
        raise DataError(f"training part of {end} requests is too short to train and validate a policy (need >= 1250)")
    started = time.perf_counter()
    rows_per_run = ROWS_PER_CAPACITY
    report: dict = {"requests": int(end), "validate_from": validate_from, "capacities": capacities,
                    "use_bytes": use_bytes, "seed": seed, "stages": {}}

    def judge(name, policy):
        ratio = validation_miss_ratio(trace, policy, capacities, validate_from=validate_from, end=end,
                                      use_bytes=use_bytes, seed=seed)
        report["stages"][name] = {"validation_miss_ratio": ratio}
        say(f"{name}: validation miss ratio {ratio:.4f}")
        return ratio

    judge("lru", "lru")
    judge("random-sample", "random-sample")
    # One expert per capacity. Each DAgger round replays every size under the current policy (sampled
    # LRU in round 0), keeps all rounds' rows, and fits two candidates per size: on that size's rows
    # only, and on every size's rows (on dev traces the first won at 1%, the second at 5-10%, with
    # much run-to-run noise). Per size, the candidate with the lowest miss ratio on the validation
    # slice so far is kept.
    data: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in capacities]
    contexts = [0.0 for _ in capacities]
    chosen: list[tuple[float, dict, str] | None] = [None for _ in capacities]
    behaviour = "random-sample"
    metadata = {"use_bytes": use_bytes}

    def size_ratio(policy, capacity):
        return validation_miss_ratio(trace, policy, [capacity], validate_from=validate_from, end=end,
                                     use_bytes=use_bytes, seed=seed)

    for round_index in range(DAGGER_ROUNDS):
        for j, capacity in enumerate(capacities):
            inputs, labels, contexts[j] = collect(trace, behaviour, capacity, start=0, stop=validate_from,
                                                  use_bytes=use_bytes, seed=seed + 101 * round_index + j,
                                                  max_rows=rows_per_run)
            data[j].append((inputs, labels))
        every = [part for parts in data for part in parts]
        for j, capacity in enumerate(capacities):
            for variant, parts in (("own", data[j]), ("all", every)):
                if variant == "all" and len(capacities) == 1:
                    continue
                x = np.concatenate([part[0] for part in parts])
                y = np.concatenate([part[1] for part in parts])
                if len(x) < MIN_TRAINING_ROWS:
                    raise DataError(f"only {len(x)} training rows at capacity {capacity}: the trace has too few "
                                    "evictions at this size")
                say(f"imitation round {round_index}, capacity {capacity}, {variant} sizes: {len(x)} rows")
                weights = fit(x, y, seed=seed + round_index + 17 * j)
                ratio = size_ratio(EvictionPolicy(weights, metadata), capacity)
                report["stages"].setdefault(f"imitation_round_{round_index}", {}).setdefault(
                    "per_size", {})[f"{capacity}/{variant}"] = ratio
                if chosen[j] is None or ratio < chosen[j][0]:
                    chosen[j] = (ratio, weights, f"round {round_index}, {variant}")
        policy = EvictionPolicy.from_experts([c[1] for c in chosen], contexts, metadata)
        behaviour = policy
        ratio = float(np.mean([c[0] for c in chosen]))
        report["stages"][f"imitation_round_{round_index}"]["validation_miss_ratio"] = ratio
        say(f"imitation round {round_index}: validation miss ratio {ratio:.4f} "
            f"(experts: {[c[2] for c in chosen]}; contexts {[round(c, 2) for c in contexts]})")
    best = EvictionPolicy.from_experts([c[1] for c in chosen], contexts, metadata)
    best_ratio = judge("imitation", best)
    best_name = "imitation"
    report["stages"]["imitation"]["experts"] = [c[2] for c in chosen]
    report["imitation_seconds"] = round(time.perf_counter() - started, 1)
    if rl_timesteps > 0:
        from streams.memory.env import fine_tune

        rl_started = time.perf_counter()
        say(f"PPO fine-tuning for {rl_timesteps} decisions")
        infos, per_size, kept = [], {}, []
        for j, capacity in enumerate(capacities):
            try:
                weights, info = fine_tune(trace, chosen[j][1], [capacity], stop=validate_from, use_bytes=use_bytes,
                                          seed=seed + j, timesteps=max(1, rl_timesteps // len(capacities)))
            except DataError as error:  # too small a cache to choose between candidates: imitation only
                say(f"PPO skipped at capacity {capacity}: {error}")
                per_size[str(capacity)] = None
                continue
            infos.append(info)
            ratio = size_ratio(EvictionPolicy(weights, metadata), capacity)
            per_size[str(capacity)] = ratio
            if ratio < chosen[j][0]:  # PPO's weights are kept only where they do better on validation
                chosen[j] = (ratio, weights, chosen[j][2] + " + ppo")
                kept.append(capacity)
        report["stages"]["ppo"] = {"per_size": per_size, "kept_at_capacities": kept,
                                   "timesteps": sum(info["timesteps"] for info in infos),
                                   "ppo": infos[0]["ppo"] if infos else None,
                                   "mean_episode_reward": [info["mean_episode_reward"] for info in infos]}
        report["rl_seconds"] = round(time.perf_counter() - rl_started, 1)
        if kept:
            best = EvictionPolicy.from_experts([c[1] for c in chosen], contexts, metadata)
            best_ratio = judge("imitation+ppo", best)
            best_name = "imitation+ppo"
    report["chosen"] = best_name
    report["train_seconds"] = round(time.perf_counter() - started, 1)
    if best is None:
        raise ModelError("training produced no policy")
    return best, report


def concatenate(traces: list[Trace]) -> Trace:
    """One trace replaying `traces` one after the other, their keys kept apart (ids offset; kinds kept)."""
    if not traces:
        raise DataError("no trace to train on")
    if len(traces) == 1:
        return traces[0]
    ids, times, keys = [], [], []
    offset, time_offset = 0, 0.0
    for trace in traces:
        ids.append(trace.ids + offset)
        span = float(trace.times[-1] - trace.times[0]) if len(trace) else 0.0
        times.append(trace.times - (trace.times[0] if len(trace) else 0.0) + time_offset)
        keys.extend(trace.keys)
        offset += trace.distinct()
        time_offset += span + 1.0
    return Trace(times=np.concatenate(times), ids=np.concatenate(ids), keys=tuple(keys),
                 sizes=np.concatenate([t.sizes for t in traces]),
                 volatility=np.concatenate([t.volatility for t in traces]))


def run_training(trace_paths: list[str], *, sizes: list[float], use_bytes: bool, seed: int, rl_timesteps: int,
                 out: str, register: bool = False, progress: Progress | None = None) -> dict:
    """`algo memory train`: train on the whole of the given traces (one after the other), save the
    policy to `out` (and register it); returns a summary. Capacities are `sizes` times the mean
    number of distinct keys (or bytes) per trace."""
    import platform

    from streams.memory.trace import read_trace

    say = progress or (lambda message: None)
    if not trace_paths:
        raise DataError("give at least one --trace")
    traces = [read_trace(path) for path in trace_paths]
    for path, trace in zip(trace_paths, traces):
        if len(trace) == 0:
            raise DataError(f"{path}: the trace has no requests")
    if use_bytes:
        totals = []
        for trace in traces:
            largest = np.zeros(trace.distinct(), dtype=np.int64)
            np.maximum.at(largest, trace.ids, trace.byte_sizes())
            totals.append(int(largest.sum()))
        base = float(np.mean(totals))
    else:
        base = float(np.mean([trace.distinct() for trace in traces]))
    capacities = sorted({max(1, round(size * base)) for size in sizes})
    combined = concatenate(traces)
    say(f"{len(combined)} requests from {len(traces)} trace(s); capacities {capacities}")
    policy, report = train_policy(combined, len(combined), capacities, use_bytes=use_bytes, seed=seed,
                                  rl_timesteps=rl_timesteps, progress=say)
    import gymnasium
    import safetensors
    import stable_baselines3
    import torch

    metadata = {**policy.metadata, "use_bytes": use_bytes, "seed": seed, "algorithm": f"imitation+ppo ({report['chosen']})",
                "architecture": {"inputs": N_INPUTS, "hidden": list(HIDDEN), "activation": "relu", "output": 1,
                                 "relative_to_batch_mean": True},
                "data": {"source": ",".join(str(path) for path in trace_paths), "requests": len(combined),
                         "distinct": combined.distinct(), "sizes": list(sizes), "capacities": capacities},
                "hyperparameters": {"dagger_rounds": DAGGER_ROUNDS, "rows_per_capacity": ROWS_PER_CAPACITY, "epochs": EPOCHS,
                                    "batch": BATCH, "learning_rate": LEARNING_RATE, "candidates": CANDIDATES,
                                    "rl_timesteps": rl_timesteps},
                "metrics": report,
                "libraries": {"numpy": np.__version__, "torch": torch.__version__,
                              "stable_baselines3": stable_baselines3.__version__, "gymnasium": gymnasium.__version__,
                              "safetensors": safetensors.__version__, "python": platform.python_version()}}
    policy = EvictionPolicy(policy.weights, metadata)
    policy.save(out)
    say(f"saved {policy.version} to {out}")
    summary = {"version": policy.version, "out": str(out), "training": report}
    if register:
        from streams.settings import get_settings

        summary["registered"] = policy.register(get_settings())
        say(f"registered {policy.version} (model 'memory')")
    return summary
