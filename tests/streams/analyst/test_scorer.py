import csv
import dataclasses
import json
import shutil
from collections import Counter

import numpy as np
import pytest

from streams.analyst import scorer as sc
from streams.analyst.embeddings import embed, model_version
from streams.errors import ModelError


@pytest.fixture(scope="module")
def shipped() -> sc.Scorer:
    return sc.Scorer.load()


def shipped_rows():
    with sc.SHIPPED_SENTENCES.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def small_training_csv(path, per_label=12):
    """A split-less CSV of the first `per_label` train sentences of each label."""
    taken, rows = Counter(), []
    for row in shipped_rows():
        if row["split"] == "train" and taken[row["label"]] < per_label:
            taken[row["label"]] += 1
            rows.append(row)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows([(row["text"], row["label"]) for row in rows])
    return path


# --- the labelled set --------------------------------------------------------------------------

def test_sentence_set_is_large_balanced_and_splits_do_not_overlap():
    rows = shipped_rows()
    assert len(rows) >= 1500
    labels = Counter(row["label"] for row in rows)
    assert set(labels) == {"positive", "negative", "neutral"}
    assert all(0.30 <= count / len(rows) <= 0.37 for count in labels.values()), labels
    texts = [row["text"].strip().lower() for row in rows]
    assert len(set(texts)) == len(texts), "duplicate sentences"
    train = {row["text"] for row in rows if row["split"] == "train"}
    test = {row["text"] for row in rows if row["split"] == "test"}
    assert train and test and not train & test
    assert {row["split"] for row in rows} == {"train", "test"}
    assert 0.20 <= len(test) / len(rows) <= 0.25
    for label in labels:  # stratified: each label's share of test is the same
        share = sum(1 for r in rows if r["label"] == label and r["split"] == "test") / labels[label]
        assert 0.20 <= share <= 0.25


def test_shipped_scorer_was_trained_on_the_shipped_train_split(shipped):
    rows, has_split = sc.read_labelled_csv(sc.SHIPPED_SENTENCES)
    train = sc.select_split(rows, has_split, "train")
    assert shipped.metadata["training_data_sha256"] == sc.data_hash(train)
    assert shipped.metadata["n_train"] == len(train)
    assert shipped.metadata["labels"] == ["negative", "neutral", "positive"]
    assert shipped.embedding_version == model_version()
    assert str(shipped.metadata["best_c"]) in {str(c) for c in shipped.metadata["c_grid"]}
    assert shipped.version.startswith("analyst-logreg-")


# --- inference ---------------------------------------------------------------------------------

def test_scores_clear_sentences_and_explains_them(shipped):
    texts = ["Operating profit rose to EUR 13.1 mn from EUR 8.7 mn.",
             "Net sales decreased by 5% to EUR 210 mn.",
             "The annual general meeting will be held in Oulu on 12 April."]
    scores = shipped.score_texts(texts)
    assert [s.label for s in scores] == ["positive", "negative", "neutral"]
    for s in scores:
        assert sum(s.probabilities.values()) == pytest.approx(1.0)
        assert s.confidence == max(s.probabilities.values())
        assert s.polarity == pytest.approx(s.probabilities["positive"] - s.probabilities["negative"])
        assert s.evidence["embedding_model"] == model_version()
    assert scores[0].polarity > 0.5 > -0.5 > scores[1].polarity
    assert ["decreased", -1.5] in scores[1].evidence["lexicon_words"]
    assert scores[1].evidence["lexicon_compound"] < 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        scores[0].label = "neutral"


def test_stored_embeddings_give_bit_identical_scores(shipped):
    texts = ["Shares in the group jumped 8% after the results.", "The plant employs 300 people."]
    vectors = embed(texts)
    from_features = shipped.score_features(vectors, texts)
    again = shipped.score_features(vectors.copy(), texts)
    assert [s.probabilities for s in from_features] == [s.probabilities for s in again]  # exact, not approx
    assert [s.label for s in shipped.score_texts(texts)] == [s.label for s in from_features]
    alone = shipped.score_features(vectors[1:], texts[1:])  # a score does not depend on its batch
    assert alone[0].probabilities == from_features[1].probabilities
    with pytest.raises(ModelError, match="embeddings must be"):
        shipped.score_features(np.zeros((2, 10), dtype=np.float32), texts)
    with pytest.raises(ModelError, match="do not match"):
        shipped.score_features(vectors, texts[:1])


def test_empty_input_scores_nothing(shipped):
    assert shipped.score_texts([]) == []


# --- files: tampering and mismatches are refused ------------------------------------------------

def test_loading_refuses_a_tampered_weights_file(tmp_path):
    copy = tmp_path / "scorer"
    shutil.copytree(sc.SHIPPED_DIR, copy)
    weights = bytearray((copy / sc.WEIGHTS_FILE).read_bytes())
    weights[-3] ^= 0x01  # one bit of one coefficient
    (copy / sc.WEIGHTS_FILE).write_bytes(bytes(weights))
    with pytest.raises(ModelError, match="sha256 does not match"):
        sc.Scorer.load(copy)


def test_loading_refuses_weights_from_another_model_and_a_forged_version(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    shutil.copytree(sc.SHIPPED_DIR, one)
    metadata = json.loads((one / sc.METADATA_FILE).read_text())
    tensors = {name: np.zeros_like(getattr(sc.Scorer.load(one), name)) for name in
               ("coef", "intercept", "feature_mean")}
    tensors["feature_scale"] = np.ones(tensors["feature_mean"].shape)
    sc.Scorer.save(two, tensors, {k: v for k, v in metadata.items() if k not in ("version", "weights_sha256")})
    shutil.copy(two / sc.WEIGHTS_FILE, one / sc.WEIGHTS_FILE)  # valid safetensors, wrong model
    with pytest.raises(ModelError, match="tampered or mismatched"):
        sc.Scorer.load(one)
    forged = json.loads((two / sc.METADATA_FILE).read_text())
    forged["training_data_sha256"] = "0" * 64  # claims other training data
    (two / sc.METADATA_FILE).write_text(json.dumps(forged))
    with pytest.raises(ModelError, match="does not match its weights and data hash"):
        sc.Scorer.load(two)


def test_loading_a_directory_without_a_model_names_the_missing_file(tmp_path):
    with pytest.raises(ModelError, match="scorer.safetensors missing"):
        sc.Scorer.load(tmp_path)
    shutil.copytree(sc.SHIPPED_DIR, tmp_path / "m")
    (tmp_path / "m" / sc.METADATA_FILE).write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        sc.Scorer.load(tmp_path / "m")


# --- reading labelled CSVs ---------------------------------------------------------------------

def test_reads_bom_quoted_commas_extra_columns_and_any_label_case(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text('\ufeffid,Text,LABEL,source\n1,"Sales rose, and margins widened.",Positive,x\n'
                    '2,"The firm, based in Oslo, has 40 staff.",NEUTRAL,y\n\n', encoding="utf-8")
    rows, has_split = sc.read_labelled_csv(path)
    assert not has_split
    assert [(r.text, r.label) for r in rows] == [("Sales rose, and margins widened.", "positive"),
                                                 ("The firm, based in Oslo, has 40 staff.", "neutral")]


@pytest.mark.parametrize("content, message", [
    ("", "empty file"),
    ("text,sentiment\nSales rose.,positive\n", "missing column(s) label"),
    ("text,label\nSales rose.,bullish\n", "row 2: unknown label 'bullish'"),
    ("text,label\n", "no labelled rows"),
    ("text,label\n,positive\n", "row 2 has an empty text"),
])
def test_bad_csvs_are_named(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ModelError, match=message.replace("(", r"\(").replace(")", r"\)")):
        sc.read_labelled_csv(path)


def test_missing_csv_and_missing_split_are_named(tmp_path):
    with pytest.raises(ModelError, match="labelled CSV not found"):
        sc.read_labelled_csv(tmp_path / "nope.csv")
    rows = [sc.LabelledRow("a", "positive", "train")]
    with pytest.raises(ModelError, match="no rows with split='test'"):
        sc.select_split(rows, True, "test")


# --- training ----------------------------------------------------------------------------------

def test_training_is_deterministic_and_round_trips(tmp_path):
    data = small_training_csv(tmp_path / "small.csv")
    first, report = sc.train(data, seed=7, out=tmp_path / "a", c_grid=(0.01, 1.0), folds=3)
    second, _ = sc.train(data, seed=7, out=tmp_path / "b", c_grid=(0.01, 1.0), folds=3)
    assert (tmp_path / "a" / sc.WEIGHTS_FILE).read_bytes() == (tmp_path / "b" / sc.WEIGHTS_FILE).read_bytes()
    assert first.version == second.version == report.version
    assert report.n_train == 36 and report.counts == {"negative": 12, "neutral": 12, "positive": 12}
    assert set(report.cv) == {"0.01", "1.0"} and report.best_c in (0.01, 1.0)
    loaded = sc.Scorer.load(tmp_path / "a")
    np.testing.assert_array_equal(loaded.coef, first.coef)
    assert loaded.metadata["seed"] == 7 and loaded.metadata["training_data_sha256"]


def test_training_needs_enough_rows_of_every_label(tmp_path):
    path = tmp_path / "tiny.csv"
    path.write_text("text,label\nSales rose.,positive\nSales fell.,negative\nIt is Tuesday.,neutral\n")
    with pytest.raises(ModelError, match="at least 3 training rows"):
        sc.train(path, seed=0, out=tmp_path / "m", folds=3)
