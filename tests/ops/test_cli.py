from click.testing import CliRunner

from ops.cli import cli


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_unknown_dataset_is_one_line():
    result = run("replay", "--dataset", "nope")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: unknown dataset 'nope'; choose one of stocks, sp500, nasdaq or pass --csv PATH"]


def test_csv_and_dataset_together_is_a_usage_error(tmp_path):
    result = run("replay", "--csv", str(tmp_path / "x.csv"), "--dataset", "stocks")
    assert result.exit_code == 2 and "either --csv or --dataset" in result.output


def test_missing_csv_and_bad_speed_are_explained(tmp_path):
    assert "no such file" in run("replay", "--csv", str(tmp_path / "missing.csv")).output
    result = run("replay", "--speed", "-1")
    assert result.exit_code == 2 and "--speed" in result.output


def test_greedy_symbols_option_takes_several_values():
    result = run("replay", "--symbols", "AAPL", "TSLA", "--limit", "1")
    assert result.exit_code == 1 and "no symbol(s) TSLA" in result.output


def test_unknown_worker_lists_the_choices():
    result = run("worker", "nope")
    assert result.exit_code == 2 and "bars" in result.output and "persistence" in result.output
