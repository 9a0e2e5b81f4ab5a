"""`algo quant train|register` without services: files, metadata, and one-line errors."""
from __future__ import annotations

import json

from click.testing import CliRunner

from ops.cli import cli
from tests import fixtures


def write_csv(tmp_path, n=400, symbols=None):
    frame = fixtures.ohlcv(n, 4)
    if symbols:
        import pandas as pd

        frame = pd.concat([frame.assign(symbol=s) for s in symbols])
    path = tmp_path / "bars.csv"
    frame.to_csv(path, index=False)
    return path


def test_train_without_registering_saves_the_model_its_metadata_and_checkpoints(tmp_path):
    csv = write_csv(tmp_path, symbols=["AAA", "BBB"])
    out = tmp_path / "model"
    result = CliRunner().invoke(cli, ["quant", "train", "--csv", str(csv), "--symbols", "BBB", "--end", "2006-06-30",
                                      "--timesteps", "512", "--checkpoint-every", "512", "--no-register",
                                      "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert not summary["registered"] and summary["symbols"] == ["BBB"] and summary["checkpoints"] == ["ppo_512_steps.zip"]
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["data"]["end"].startswith("2006-06-30") and metadata["data"]["start"].startswith("2005-01-03")
    assert metadata["version"] == summary["version"] and (out / "model.safetensors").stat().st_size > 10_000
    assert not list(tmp_path.glob(".training-*"))  # the scratch directory is gone


def test_registering_without_postgres_says_where_the_model_is_and_how_to_register_it(tmp_path):
    csv = write_csv(tmp_path)
    out = tmp_path / "m"
    result = CliRunner(env={"DATABASE_URL": "postgresql://algo:algo@127.0.0.1:9/algo"}).invoke(
        cli, ["quant", "train", "--csv", str(csv), "--timesteps", "256", "--checkpoint-every", "0", "--out", str(out)])
    assert result.exit_code == 1
    assert "cannot reach Postgres" in result.output and f"algo quant register {out}" in result.output
    assert (out / "model.safetensors").exists()


def test_bad_arguments_get_one_line_explanations(tmp_path):
    runner = CliRunner()
    csv = write_csv(tmp_path)
    result = runner.invoke(cli, ["quant", "train", "--csv", str(csv), "--end", "30/06/2006"])
    assert result.exit_code == 2 and "not a date like 2012-12-31" in result.output
    result = runner.invoke(cli, ["quant", "train", "--csv", str(csv), "--dataset", "sp500"])
    assert result.exit_code == 2 and "use one of --csv, --dataset and --from-db" in result.output
    result = runner.invoke(cli, ["quant", "train", "--csv", str(csv), "--end", "2005-02-01", "--no-register"])
    assert result.exit_code == 1 and "no symbol has more than" in result.output
    result = runner.invoke(cli, ["quant", "train", "--timesteps", "10"])
    assert result.exit_code == 2 and "--timesteps" in result.output
    result = runner.invoke(cli, ["quant", "register", str(tmp_path)])
    assert result.exit_code == 1 and "not a saved model" in result.output
