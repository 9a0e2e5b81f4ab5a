"""The default (offline) sentiment scorer: MiniLM embedding + FinVADER lexicon features -> logistic regression.

Features of a sentence: its 384-d all-MiniLM-L6-v2 embedding (streams.analyst.embeddings.embed)
followed by VADER-with-FinVADER compound, pos, neg, neu (streams.analyst.lexicon), standardised with
the training set's mean and scale. A multinomial logistic regression (scikit-learn, lbfgs) is trained
on the labelled sentences; C is chosen by stratified cross-validation on the training rows only.

Saved as tensors (safetensors: coef, intercept, feature mean, feature scale; loading runs no code)
plus scorer.json metadata: labels order, feature layout, seed, CV figures, training-data hash, the
embedding model's version. The version is content-addressed,
`analyst-logreg-<12 hex of sha256(weights file bytes + training-data hash)>`, and loading checks the
weights file against it, so a tampered or mismatched file is refused. Inference is plain numpy on
the loaded arrays: the same embedding always gives the same probabilities, bit for bit.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from streams.analyst import lexicon
from streams.errors import ModelError
from streams.resources import read_utf8

LABELS = ("negative", "neutral", "positive")
WEIGHTS_FILE = "scorer.safetensors"
METADATA_FILE = "scorer.json"
SHIPPED_DIR = Path(__file__).resolve().parent / "data" / "scorer"
SHIPPED_SENTENCES = Path(__file__).resolve().parent / "data" / "sentences.csv"
DEFAULT_OUT = Path("models") / "analyst-scorer"  # a user's own models (git-ignored); the shipped one only on request
C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
CV_FOLDS = 5
_TENSORS = ("coef", "intercept", "feature_mean", "feature_scale")


@dataclass(frozen=True)
class Score:
    label: str
    confidence: float  # the largest class probability
    probabilities: dict[str, float]
    polarity: float  # p(positive) - p(negative), in [-1, 1]
    evidence: dict[str, Any] = field(default_factory=dict)  # lexicon words with valences, compound

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "confidence": self.confidence, "probabilities": dict(self.probabilities),
                "polarity": self.polarity, "evidence": self.evidence}


@dataclass(frozen=True)
class LabelledRow:
    text: str
    label: str
    split: str | None


def normalise_label(raw: str, where: str) -> str:
    label = (raw or "").strip().lower()
    if label not in LABELS:
        raise ModelError(f"{where}: unknown label {raw!r} (expected one of {', '.join(LABELS)})")
    return label


def read_labelled_csv(path: str | Path) -> tuple[list[LabelledRow], bool]:
    """Rows of a `text,label[,split]` CSV (any extra columns ignored; BOM, quoting handled) and
    whether it had a split column. Raises ModelError naming the problem."""
    path = Path(path)
    content = read_utf8(path, ModelError, f"labelled CSV not found: {path}")
    reader = csv.DictReader(io.StringIO(content, newline=""))
    if not reader.fieldnames:
        raise ModelError(f"{path}: empty file (expected a header with columns text,label)")
    columns = {name.strip().lower(): name for name in reader.fieldnames if name is not None}
    missing = [name for name in ("text", "label") if name not in columns]
    if missing:
        raise ModelError(f"{path}: missing column(s) {', '.join(missing)} (has: {', '.join(reader.fieldnames)})")
    has_split = "split" in columns
    rows = []
    for number, record in enumerate(reader, start=2):
        text = (record.get(columns["text"]) or "").strip()
        raw_label = record.get(columns["label"]) or ""
        if not text and not raw_label.strip():
            continue  # a blank line
        if not text:
            raise ModelError(f"{path}: row {number} has an empty text")
        label = normalise_label(raw_label, f"{path}: row {number}")
        split = (record.get(columns["split"]) or "").strip().lower() if has_split else None
        rows.append(LabelledRow(text, label, split))
    if not rows:
        raise ModelError(f"{path}: no labelled rows")
    return rows, has_split


def select_split(rows: list[LabelledRow], has_split: bool, split: str | None) -> list[LabelledRow]:
    """`split` of the rows ('all' or None: every row); a CSV without a split column is all rows."""
    if not has_split or split in (None, "all"):
        return list(rows)
    chosen = [row for row in rows if row.split == split]
    if not chosen:
        raise ModelError(f"no rows with split={split!r} (splits present: {', '.join(sorted({r.split or '' for r in rows}))})")
    return chosen


def data_hash(rows: Iterable[LabelledRow]) -> str:
    """sha256 over the (text, label) pairs in order: names the training data exactly."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(row.text.encode("utf-8") + b"\x1f" + row.label.encode("ascii") + b"\x1e")
    return digest.hexdigest()


def feature_matrix(embeddings: np.ndarray, texts: list[str]) -> tuple[np.ndarray, list[lexicon.LexiconScore]]:
    """[embedding | compound, pos, neg, neu] per text, float64, and the lexicon scores (for evidence)."""
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(texts):
        raise ModelError(f"embeddings of shape {embeddings.shape} do not match {len(texts)} text(s)")
    scores = [lexicon.score(text) for text in texts]
    lexical = np.asarray([s.vector() for s in scores], dtype=np.float64).reshape(len(texts), len(lexicon.FEATURES))
    return np.hstack([embeddings.astype(np.float64), lexical]), scores


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _version(weights_bytes: bytes, training_hash: str) -> str:
    return "analyst-logreg-" + _sha256(weights_bytes + training_hash.encode("ascii"))[:12]


class Scorer:
    """A loaded scorer: numpy arrays and their metadata; `score_texts` / `score_features` classify."""

    def __init__(self, tensors: dict[str, np.ndarray], metadata: dict[str, Any]) -> None:
        self.coef = np.asarray(tensors["coef"], dtype=np.float64)
        self.intercept = np.asarray(tensors["intercept"], dtype=np.float64)
        self.feature_mean = np.asarray(tensors["feature_mean"], dtype=np.float64)
        self.feature_scale = np.asarray(tensors["feature_scale"], dtype=np.float64)
        self.metadata = metadata
        self.labels = tuple(metadata["labels"])
        self.embedding_dimensions = int(metadata["feature_layout"]["embedding_dimensions"])
        width = self.embedding_dimensions + len(metadata["feature_layout"]["lexicon"])
        if self.coef.shape != (len(self.labels), width) or self.intercept.shape != (len(self.labels),) \
                or self.feature_mean.shape != (width,) or self.feature_scale.shape != (width,):
            raise ModelError(f"scorer tensors do not match the metadata's layout ({len(self.labels)} labels x {width} features)")

    @property
    def version(self) -> str:
        return self.metadata["version"]

    @property
    def embedding_version(self) -> str:
        return self.metadata["embedding_model"]

    # --- files -------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path | None = None) -> "Scorer":
        """The scorer saved in `path` (default: the shipped one), after checking its weights' hash."""
        from safetensors import SafetensorError
        from safetensors.numpy import load as load_tensors

        directory = Path(path) if path is not None else SHIPPED_DIR
        weights_path, metadata_path = directory / WEIGHTS_FILE, directory / METADATA_FILE
        for required in (weights_path, metadata_path):
            if not required.is_file():
                raise ModelError(f"no scorer in {directory}: {required.name} missing (train one with `algo analyst train`)")
        try:
            metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ModelError(f"{metadata_path}: not valid JSON ({error})") from error
        weights_bytes = weights_path.read_bytes()
        expected = metadata.get("weights_sha256")
        if _sha256(weights_bytes) != expected:
            raise ModelError(f"{weights_path}: sha256 does not match {metadata_path.name} (tampered or mismatched files)")
        if _version(weights_bytes, metadata.get("training_data_sha256", "")) != metadata.get("version"):
            raise ModelError(f"{metadata_path}: version {metadata.get('version')!r} does not match its weights and data hash")
        try:
            tensors = load_tensors(weights_bytes)
        except SafetensorError as error:
            raise ModelError(f"{weights_path}: not a safetensors file ({error})") from error
        missing = [name for name in _TENSORS if name not in tensors]
        if missing:
            raise ModelError(f"{weights_path}: missing tensor(s) {', '.join(missing)}")
        if metadata.get("labels") is None or metadata.get("feature_layout") is None:
            raise ModelError(f"{metadata_path}: labels or feature_layout missing")
        return cls(tensors, metadata)

    @staticmethod
    def save(directory: str | Path, tensors: dict[str, np.ndarray], metadata: dict[str, Any]) -> "Scorer":
        """Write the weights and metadata (version and hashes filled in) and return the loaded scorer."""
        from safetensors.numpy import save as save_tensors

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        weights_bytes = save_tensors({name: np.ascontiguousarray(tensors[name], dtype=np.float64) for name in _TENSORS})
        metadata = {**metadata, "weights_sha256": _sha256(weights_bytes),
                    "version": _version(weights_bytes, metadata["training_data_sha256"])}
        (directory / WEIGHTS_FILE).write_bytes(weights_bytes)
        (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return Scorer.load(directory)

    # --- inference ---------------------------------------------------------------------------
    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(n, len(labels)) class probabilities of standardised features, in numpy float64."""
        standardised = (np.asarray(features, dtype=np.float64) - self.feature_mean) / self.feature_scale
        # row by row: a matrix product may take a different BLAS path for a different batch size,
        # and a sentence's score must not depend on what else was scored with it
        logits = np.stack([row @ self.coef.T for row in standardised]) if len(standardised) else \
            np.zeros((0, len(self.labels)))
        return _softmax(logits + self.intercept)

    def score_features(self, embeddings: np.ndarray, texts: list[str]) -> list[Score]:
        """Scores from stored embeddings (one row per text, made by the same embedding model)."""
        texts = list(texts)
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embedding_dimensions:
            raise ModelError(f"embeddings must be (n, {self.embedding_dimensions}), got {embeddings.shape}")
        features, lexical = feature_matrix(embeddings, texts)
        probabilities = self.probabilities(features)
        index = {label: i for i, label in enumerate(self.labels)}
        scores = []
        for row, lex in zip(probabilities, lexical):
            best = int(np.argmax(row))
            probs = {label: float(row[i]) for i, label in enumerate(self.labels)}
            scores.append(Score(label=self.labels[best], confidence=float(row[best]), probabilities=probs,
                                polarity=float(row[index["positive"]] - row[index["negative"]]),
                                evidence={"lexicon_compound": lex.compound,
                                          "lexicon_words": [list(pair) for pair in lex.words],
                                          "embedding_model": self.embedding_version}))
        return scores

    def score_texts(self, texts: list[str], batch_size: int = 64) -> list[Score]:
        from streams.analyst.embeddings import embed

        texts = list(texts)
        if not texts:
            return []
        return self.score_features(embed(texts, batch_size=batch_size), texts)


# --- training ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainReport:
    version: str
    n_train: int
    counts: dict[str, int]
    best_c: float
    cv: dict[str, dict[str, float]]  # C -> mean/std accuracy and macro-F1 over the folds
    directory: str

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "n_train": self.n_train, "counts": self.counts, "best_c": self.best_c,
                "cv": self.cv, "directory": self.directory}


def _fit(features: np.ndarray, labels: np.ndarray, c: float, seed: int):
    from sklearn.linear_model import LogisticRegression

    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale[scale == 0.0] = 1.0  # a constant feature: leave it unscaled rather than divide by zero
    model = LogisticRegression(C=c, max_iter=5000, tol=1e-6, random_state=seed)
    model.fit((features - mean) / scale, labels)
    return model, mean, scale


def train(csv_path: str | Path | None = None, seed: int = 0, out: str | Path | None = None,
          c_grid: Iterable[float] = C_GRID, folds: int = CV_FOLDS) -> tuple[Scorer, TrainReport]:
    """Train on the CSV's train split (all rows when it has no split column) and save to `out`
    (default models/analyst-scorer; pass SHIPPED_DIR to rebuild the shipped scorer).

    C is the grid value with the best mean macro-F1 over stratified folds of the training rows;
    the final model is refitted on all of them. Same data and seed -> identical weights."""
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import StratifiedKFold

    from streams.analyst.embeddings import embed, model_version

    csv_path = Path(csv_path) if csv_path is not None else SHIPPED_SENTENCES
    out = Path(out) if out is not None else DEFAULT_OUT
    rows, has_split = read_labelled_csv(csv_path)
    rows = select_split(rows, has_split, "train")
    label_index = {label: i for i, label in enumerate(LABELS)}
    y = np.asarray([label_index[row.label] for row in rows])
    counts = {label: int((y == i).sum()) for i, label in enumerate(LABELS)}
    if min(counts.values()) < folds:
        raise ModelError(f"{csv_path}: every label needs at least {folds} training rows for CV, got {counts}")
    texts = [row.text for row in rows]
    features, _ = feature_matrix(embed(texts), texts)

    cv: dict[str, dict[str, float]] = {}
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for c in c_grid:
        accuracies, f1s = [], []
        for train_idx, valid_idx in splitter.split(features, y):
            model, mean, scale = _fit(features[train_idx], y[train_idx], c, seed)
            predicted = model.predict((features[valid_idx] - mean) / scale)
            accuracies.append(accuracy_score(y[valid_idx], predicted))
            f1s.append(f1_score(y[valid_idx], predicted, average="macro"))
        cv[repr(float(c))] = {"accuracy_mean": round(float(np.mean(accuracies)), 4),
                              "accuracy_std": round(float(np.std(accuracies)), 4),
                              "macro_f1_mean": round(float(np.mean(f1s)), 4),
                              "macro_f1_std": round(float(np.std(f1s)), 4)}
    best_c = max(c_grid, key=lambda c: (cv[repr(float(c))]["macro_f1_mean"], -c))  # ties: the simpler model

    model, mean, scale = _fit(features, y, best_c, seed)
    if tuple(int(k) for k in model.classes_) != tuple(range(len(LABELS))):
        raise ModelError("training data lacks a label")
    from importlib.metadata import version as package_version

    metadata = {
        "model": "analyst-logreg",
        "labels": list(LABELS),
        "feature_layout": {"embedding_dimensions": int(features.shape[1] - len(lexicon.FEATURES)),
                           "lexicon": list(lexicon.FEATURES),
                           "order": "embedding then lexicon; standardised with feature_mean/feature_scale"},
        "embedding_model": model_version(),
        "lexicon": f"vaderSentiment=={package_version('vaderSentiment')} + finvader=={package_version('finvader')} "
                   f"(SentiBigNomics x{lexicon.SENTIBIGNOMICS_SCALE}, Henry)",
        "training_data": str(csv_path.name),
        "training_data_sha256": data_hash(rows),
        "n_train": len(rows),
        "train_counts": counts,
        "seed": seed,
        "c_grid": [float(c) for c in c_grid],
        "cv_folds": folds,
        "cv": cv,
        "best_c": float(best_c),
        "sklearn": package_version("scikit-learn"),
    }
    tensors = {"coef": model.coef_, "intercept": model.intercept_, "feature_mean": mean, "feature_scale": scale}
    scorer = Scorer.save(out, tensors, metadata)
    return scorer, TrainReport(scorer.version, len(rows), counts, float(best_c), cv, str(out))


# --- evaluation ----------------------------------------------------------------------------------
def evaluate(scorer: Scorer, rows: list[LabelledRow], batch_size: int = 64) -> dict[str, Any]:
    """accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix (rows: truth)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    truth = [row.label for row in rows]
    predicted = [score.label for score in scorer.score_texts([row.text for row in rows], batch_size=batch_size)]
    labels = list(LABELS)
    precision, recall, f1, support = precision_recall_fscore_support(truth, predicted, labels=labels, zero_division=0)
    matrix = confusion_matrix(truth, predicted, labels=labels)
    return {
        "n": len(rows),
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
        "macro_f1": round(float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)), 4),
        "per_class": {label: {"precision": round(float(precision[i]), 4), "recall": round(float(recall[i]), 4),
                              "f1": round(float(f1[i]), 4), "support": int(support[i])}
                      for i, label in enumerate(labels)},
        "confusion": {"labels": labels, "matrix": matrix.tolist()},
        "model_version": scorer.version,
    }
