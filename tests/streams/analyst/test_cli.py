import csv
import json

import pytest
from click.testing import CliRunner

from ops.cli import cli
from streams.analyst import scorer as sc

ROWS = [  # (text, label, split): clear cases, with a comma inside quotes and mixed-case labels
    ("Operating profit rose to EUR 13.1 mn from EUR 8.7 mn.", "Positive", "test"),
    ("Net sales decreased by 5% to EUR 210 mn.", "NEGATIVE", "test"),
    ("The company, founded in 1923, is based in Tampere.", "neutral", "test"),
    ("The shipyard won an order for two ferries worth EUR 400 mn.", "positive", "test"),
    ("The company swung to a loss and cut its dividend.", "negative", "test"),
    ("The shares fell 14% after the profit warning.", "negative", "train"),
    ("The agreement was signed on Tuesday.", "neutral", "train"),
]


def run(*args):
    return CliRunner().invoke(cli, ["analyst", *map(str, args)])


def write_csv(path, rows, header=("id", "text", "label", "split", "source"), bom=True):
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i, (text, label, split) in enumerate(rows):
            record = {"id": i, "text": text, "label": label, "split": split, "source": "test"}
            writer.writerow([record[name] for name in header])
    return path


@pytest.fixture(scope="module")
def shipped():
    return sc.Scorer.load()


def test_evaluate_json_counts_the_test_rows_by_default(tmp_path, shipped):
    result = run("evaluate", "--csv", write_csv(tmp_path / "l.csv", ROWS), "--json")
    assert result.exit_code == 0, result.output
    assert len(result.output.strip().splitlines()) == 1
    report = json.loads(result.output)
    test_rows = [r for r in ROWS if r[2] == "test"]
    predicted = [s.label for s in shipped.score_texts([r[0] for r in test_rows])]
    truth = [r[1].lower() for r in test_rows]
    assert report["n"] == 5 and report["split"] == "test"
    assert report["accuracy"] == round(sum(p == t for p, t in zip(predicted, truth)) / 5, 4)
    labels = report["confusion"]["labels"]
    matrix = report["confusion"]["matrix"]
    for i, label in enumerate(labels):
        assert sum(matrix[i]) == truth.count(label) == report["per_class"][label]["support"]
        assert sum(row[i] for row in matrix) == predicted.count(label)
    assert {"accuracy", "macro_f1", "n", "per_class", "confusion"} <= set(report)
    assert set(report["per_class"]["positive"]) == {"precision", "recall", "f1", "support"}


def test_evaluate_split_choice_and_csv_without_split_column(tmp_path):
    path = write_csv(tmp_path / "l.csv", ROWS)
    assert json.loads(run("evaluate", "--csv", path, "--split", "all", "--json").output)["n"] == 7
    assert json.loads(run("evaluate", "--csv", path, "--split", "train", "--json").output)["n"] == 2
    plain = write_csv(tmp_path / "p.csv", ROWS, header=("text", "label"), bom=False)
    assert json.loads(run("evaluate", "--csv", plain, "--json").output)["n"] == 7


def test_evaluate_prints_a_readable_report(tmp_path):
    result = run("evaluate", "--csv", write_csv(tmp_path / "l.csv", ROWS))
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "macro-F1" in result.output
    assert "confusion matrix" in result.output
    for label in ("positive", "negative", "neutral"):
        assert label in result.output


@pytest.mark.parametrize("content, message", [
    (None, "labelled CSV not found"),
    ("", "empty file"),
    ("sentence,label\nSales rose.,positive\n", "missing column(s) text"),
    ("text,label\nSales rose.,up\n", "unknown label 'up'"),
])
def test_evaluate_bad_input_is_one_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    result = run("evaluate", "--csv", path)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_evaluate_with_a_missing_model_dir_is_one_line(tmp_path):
    result = run("evaluate", "--csv", write_csv(tmp_path / "l.csv", ROWS), "--model", tmp_path / "none")
    assert result.exit_code == 1 and "no scorer in" in result.output


def test_score_json_and_text(shipped):
    result = run("score", "Operating profit fell to EUR 3.4 mn from EUR 9.8 mn.", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["label"] == "negative" and payload["model_version"] == shipped.version
    assert set(payload["probabilities"]) == {"positive", "negative", "neutral"}
    assert payload["polarity"] < 0 and ["fell", -1.5] in payload["evidence"]["lexicon_words"]
    text = run("score", "Operating profit fell to EUR 3.4 mn from EUR 9.8 mn.").output
    assert text.startswith("negative (confidence") and "fell -1.5" in text and "all-MiniLM-L6-v2" in text
    empty = run("score", "  ")
    assert empty.exit_code == 1 and empty.output.strip() == "error: score needs a non-empty TEXT"


def test_train_same_seed_same_weights(tmp_path):
    rows = [r for r in csv.DictReader(sc.SHIPPED_SENTENCES.open(encoding="utf-8", newline="")) if r["split"] == "train"]
    small = []
    for label in ("positive", "negative", "neutral"):
        small += [(r["text"], r["label"], "train") for r in rows if r["label"] == label][:10]
    small += [("The plant was opened in 1998.", "neutral", "test")]  # a test row is never trained on
    path = write_csv(tmp_path / "t.csv", small)
    first = run("train", "--csv", path, "--seed", "3", "--out", tmp_path / "a")
    second = run("train", "--csv", path, "--seed", "3", "--out", tmp_path / "b", "--json")
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert "cross-validation" in first.output and "<- chosen" in first.output
    assert (tmp_path / "a" / sc.WEIGHTS_FILE).read_bytes() == (tmp_path / "b" / sc.WEIGHTS_FILE).read_bytes()
    report = json.loads(second.output)
    assert report["n_train"] == 30 and report["version"] in first.output


def test_train_defaults_to_a_user_dir_not_the_shipped_scorer():
    from streams.analyst.cli import DEFAULT_SCORER_OUT

    assert DEFAULT_SCORER_OUT == str(sc.DEFAULT_OUT) == "models/analyst-scorer"
    assert sc.DEFAULT_OUT.resolve() != sc.SHIPPED_DIR


def test_train_bad_csv_is_one_line(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("text,label\nSales rose.,positive\n")
    result = run("train", "--csv", path, "--out", tmp_path / "m")
    assert result.exit_code == 1 and result.output.startswith("error: ") and "at least 5 training rows" in result.output
