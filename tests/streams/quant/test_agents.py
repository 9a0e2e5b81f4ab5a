"""Integration: `algo quant train` registers a version in Postgres; the quant worker serves it on
market.bars, votes exactly as the offline policy does, hot-swaps to a newly registered version
without a restart, and the consensus stream counts its votes. Real Kafka, registry, Postgres."""
from __future__ import annotations

import json
import uuid
from datetime import timedelta

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner

from streams.quant import model as qm
from ops.cli import cli
from streams.bus.codecs import CodecRegistry
from streams.quant.vote import ACTION_OF_SIGN
from tests import fixtures
from tests.kafka_tools import Worker, all_matching, first_matching, produce, wait_for

pytestmark = pytest.mark.integration


REGISTERED: list[str] = []  # removed from the registry when the module ends, so no later run serves a test model


def train(tmp_path, seed: int) -> dict:
    csv = tmp_path / "train.csv"
    if not csv.exists():
        fixtures.ohlcv(600, 77).to_csv(csv, index=False)
    result = CliRunner().invoke(cli, ["quant", "train", "--csv", str(csv), "--timesteps", "512", "--seed", str(seed),
                                      "--checkpoint-every", "256", "--out", str(tmp_path / f"model-{seed}"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    REGISTERED.append(summary["version"])
    return summary


@pytest.fixture(scope="module")
def first_model(provisioned, tmp_path_factory):
    directory = tmp_path_factory.mktemp("quant")
    yield train(directory, seed=1), directory
    with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM model_versions WHERE version = ANY(%s)", (REGISTERED,))


def test_train_saves_checkpoints_and_registers_a_version_in_postgres(first_model, provisioned):
    summary, _ = first_model
    assert summary["registered"] and summary["checkpoints"] == ["ppo_256_steps.zip", "ppo_512_steps.zip"]
    assert qm.current_version(provisioned) == summary["version"]
    listed = json.loads(CliRunner().invoke(cli, ["quant", "versions", "--json"]).output)["versions"]
    row = next(r for r in listed if r["version"] == summary["version"])
    assert row["seed"] == 1 and row["bars"] == 600 and row["data_source"] == "csv:train.csv"
    assert set(row["metrics"]["in_sample"]) == {"TRAIN"}  # a CSV without a symbol column is named after the file
    policy = qm.fetch(provisioned, summary["version"])
    assert policy.metadata["data"]["start"].startswith("2005-01-03") and policy.metadata["timesteps"] == 512


def publish_bars(settings, symbol: str, frame, first_day: int = 0) -> list[dict]:
    codec = CodecRegistry(settings.schema_registry_url).for_topic("market.bars")
    start = fixtures.T0.replace(hour=0, minute=0)
    bars = []
    for i, row in enumerate(frame.itertuples(index=False)):
        bar = fixtures.bar(symbol=symbol, ts=start + timedelta(days=first_day + i), open=row.open, high=row.high,
                           low=row.low, close=row.close, volume=row.volume)
        produce(settings, "market.bars", symbol.encode(), codec.encode(bar))
        bars.append(bar)
    return bars


def test_the_worker_votes_like_the_offline_policy_and_hot_swaps_versions(first_model, provisioned):
    summary, directory = first_model
    worker = Worker("quant", directory / "quant.log", QUANT_MODEL_POLL_S="1")
    try:
        wait_for(lambda: summary["version"] in worker.log(), timeout=30, what="the worker to load the model")
        symbol = f"Q{uuid.uuid4().hex[:6].upper()}"
        frame = fixtures.ohlcv(90, 8)
        publish_bars(provisioned, symbol, frame)
        policy = qm.fetch(provisioned, summary["version"])
        spec = policy.spec
        votes = all_matching(provisioned, "agent.signals", lambda r: r["symbol"] == symbol, len(frame), timeout=90)
        assert {s["agent"] for s in votes} == {"quant"}
        assert {s["model_version"] for s in votes} == {summary["version"]}
        # a vote on every bar (the consensus waits for one): HOLD with no confidence while the window fills
        warming, signals = votes[:spec.warmup - 1], votes[spec.warmup - 1:]
        assert {(s["action"], s["confidence"]) for s in warming} == {("HOLD", 0.0)}
        assert all("warming up" in s["rationale"] for s in warming)

        from streams.quant.features import feature_matrix

        features = feature_matrix(frame["close"].to_numpy(), spec)
        signs, confidence = policy.rollout(features, spec.warmup - 1, len(frame))
        assert [s["action"] for s in signals] == [ACTION_OF_SIGN[x] for x in signs]
        np.testing.assert_allclose([s["confidence"] for s in signals], confidence, rtol=1e-5)

        pid = worker.process.pid
        second = train(directory, seed=2)
        assert second["version"] != summary["version"]
        wait_for(lambda: f"serving model {second['version']}" in worker.log(), timeout=30,
                 what="the worker to swap to the new version")
        publish_bars(provisioned, symbol, fixtures.ohlcv(95, 8).tail(5), first_day=90)
        later = all_matching(provisioned, "agent.signals", lambda r: r["symbol"] == symbol, len(frame) + 5, timeout=60)
        assert {s["model_version"] for s in later[len(frame):]} == {second["version"]}
        assert worker.process.poll() is None and worker.process.pid == pid
    finally:
        worker.stop()


def test_the_consensus_stream_counts_quant_votes(first_model, provisioned):
    _, directory = first_model
    version = qm.current_version(provisioned)
    quant = Worker("quant", directory / "quant-2.log")
    consensus = Worker("consensus", directory / "consensus.log",
                       CONSENSUS_WEIGHTS="technical=0,quant=1", CONSENSUS_MIN_SCORE="0.05")
    try:
        wait_for(lambda: version in quant.log(), timeout=30, what="the quant worker to load the model")
        symbol = f"C{uuid.uuid4().hex[:6].upper()}"
        publish_bars(provisioned, symbol, fixtures.ohlcv(90, 8))
        decision = first_matching(provisioned, "consensus.decisions",
                                  lambda r: r["symbol"] == symbol and r["action"] != "HOLD", timeout=90)
        assert [v["agent"] for v in decision["votes"]] == ["quant"]
        assert decision["votes"][0]["action"] == decision["action"]
    finally:
        quant.stop()
        consensus.stop()


def test_train_and_evaluate_read_bars_from_postgres(provisioned, tmp_path):
    symbol = f"D{uuid.uuid4().hex[:6].upper()}"
    frame = fixtures.ohlcv(400, 31)
    rows = [(symbol, "1d", f"{r.date} 00:00:00+00", r.open, r.high, r.low, r.close, r.volume, 4)
            for r in frame.itertuples(index=False)]
    with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
        with conn.cursor() as cursor:
            cursor.executemany("INSERT INTO market_data (symbol, interval, ts, open, high, low, close, volume, tick_count) "
                               "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
    try:
        runner = CliRunner()
        result = runner.invoke(cli, ["quant", "train", "--from-db", "--symbols", symbol, "--timesteps", "256",
                                     "--checkpoint-every", "0", "--no-register", "--out", str(tmp_path / "m"), "--json"])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.output)
        assert summary["data"]["source"] == "postgres:market_data" and summary["data"]["bars"] == 400
        result = runner.invoke(cli, ["quant", "evaluate", "--from-db", "--symbol", symbol, "--seeds", "1", "--folds", "2",
                                     "--timesteps", "256", "--out", str(tmp_path / "eval"), "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["symbol"] == symbol and report["bars"] == 400 and len(report["seeds"]) == 1
        missing = runner.invoke(cli, ["quant", "train", "--from-db", "--symbols", "NOSUCHSYM", "--no-register"])
        assert missing.exit_code == 1 and "market_data has no 1d bars for NOSUCHSYM" in missing.output
    finally:
        with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
            conn.execute("DELETE FROM market_data WHERE symbol = %s", (symbol,))
