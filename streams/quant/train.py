"""Train, save and register a Quant policy: what `algo quant train` and the demo run."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import risk_core as rc
from streams.quant import model as qm
from streams.market.datasets import BarSeries
from streams.errors import ModelError
from streams.quant.env import EnvConfig, MarketSeries
from streams.quant.features import FeatureSpec


def train_and_register(settings, bars: list[BarSeries], source: str, *, timesteps: int, seed: int,
                       checkpoint_every: int = 0, out_dir: Path | None = None, register: bool = True,
                       progress_bar: bool = False) -> dict:
    """Trains on every series with enough bars, saves model.safetensors + metadata.json (+ checkpoints) under
    `out_dir` (default $ALGO_MODEL_DIR/<version>), registers the version; returns a summary."""
    spec, config = FeatureSpec(), EnvConfig()
    series = [MarketSeries.build(b.symbol, b.open, b.close, spec) for b in bars]
    series = [s for s in series if len(s) - s.first_decision_bar() >= 2]
    if not series:
        raise ModelError(f"no symbol has more than {spec.warmup} bars in the chosen range")
    base = out_dir.resolve().parent if out_dir else settings.model_dir
    base.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".training-", dir=base))  # checkpoints, until the version is known
    try:
        model = qm.train_policy(series, spec, config, timesteps=timesteps, seed=seed,
                                checkpoint_dir=scratch / "checkpoints", checkpoint_every=checkpoint_every,
                                progress_bar=progress_bar)
        artifact = qm.artifact_bytes(model)
        policy = qm.QuantPolicy.from_model(model, spec, config, version=qm.version_of(artifact))
        in_sample = {}
        for s in series:
            first = s.first_decision_bar()
            signs, _ = policy.rollout(s.features, first, len(s))
            stats = rc.backtest(s.open[first:], s.close[first:], target=signs, **config.backtest_params()).stats
            in_sample[s.symbol] = {"sharpe": stats.sharpe, "total_return": stats.total_return,
                                   "max_drawdown": stats.max_drawdown, "fills": stats.num_fills}
        used = [b for b in bars if b.symbol in in_sample]
        metadata = qm.build_metadata(
            artifact=artifact, architecture=qm.architecture_of(model.policy), seed=seed, timesteps=timesteps,
            hyperparameters={}, spec=spec, config=config,
            source=source, symbols=[b.symbol for b in used], start=str(min(b.dates[0] for b in used)),
            end=str(max(b.dates[-1] for b in used)), bars=sum(len(b) for b in used),
            metrics={"in_sample": in_sample, "note": "in-sample figures on the training data; "
                                                     "see `algo quant evaluate` for out-of-sample ones"})
        target = out_dir or settings.model_dir / metadata["version"]
        qm.save(target, artifact, metadata)
        checkpoints = scratch / "checkpoints"
        if checkpoints.exists():
            (target / "checkpoints").mkdir(exist_ok=True)
            for file in sorted(checkpoints.iterdir()):
                file.replace(target / "checkpoints" / file.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    try:
        registered = qm.register(settings, artifact, metadata) if register else None
    except ModelError as error:
        raise ModelError(f"{error}; the model is saved in {target}: register it later with "
                         f"`algo quant register {target}`") from error
    return {"version": metadata["version"], "path": str(target), "registered": registered is not None,
            "seed": seed, "timesteps": timesteps, "symbols": metadata["data"]["symbols"], "data": metadata["data"],
            "in_sample": in_sample, "checkpoints": sorted(p.name for p in (target / "checkpoints").glob("*.zip"))}
