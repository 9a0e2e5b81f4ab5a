"""Lexicon features for financial sentences: VADER with the FinVADER lexicons.

vaderSentiment's SentimentIntensityAnalyzer (its lexicon ships in the wheel) is a general-purpose
social-media lexicon: it reads "operating profit fell" as positive ("profit"). FinVADER (Apache-2.0)
fixes that by merging two finance lexicons into VADER's: SentiBigNomics (scaled by 0.1, as FinVADER
does) and Henry's (2008) earnings-press-release word list, Henry winning where both have a word.

The finvader package is never imported: its __init__ imports nltk and calls nltk.download(), which
fails offline. Its two lexicon modules are plain dict builders, so they are loaded from their files
with importlib.util.spec_from_file_location. The package directory is found through
importlib.metadata (reading the distribution's file list executes nothing).
"""
from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from streams.errors import AlgoError

# FinVADER's own constant: SentiBigNomics valences are on a wider scale than VADER's
SENTIBIGNOMICS_SCALE = 0.1
FEATURES = ("compound", "pos", "neg", "neu")
_WORD = re.compile(r"[a-z][a-z'-]*")


@dataclass(frozen=True)
class LexiconScore:
    compound: float
    pos: float
    neg: float
    neu: float
    words: tuple[tuple[str, float], ...]  # matched lexicon words with their valences, in text order

    def vector(self) -> list[float]:
        return [self.compound, self.pos, self.neg, self.neu]


def finvader_dir() -> Path:
    """The installed finvader package directory, found without importing it."""
    try:
        dist = metadata.distribution("finvader")
    except metadata.PackageNotFoundError as error:
        raise AlgoError("finvader is not installed: pip install finvader==1.0.4 (its lexicon files are read)") from error
    for file in dist.files or ():
        if file.name == "Henry.py" and file.parent.name == "finvader":
            return Path(dist.locate_file(file)).parent
    raise AlgoError("the finvader distribution has no finvader/Henry.py: unexpected package layout")


def _load_module_function(path: Path, function: str) -> dict[str, float]:
    if not path.is_file():
        raise AlgoError(f"finvader lexicon file missing: {path}")
    spec = importlib.util.spec_from_file_location(f"_finvader_lexicon_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the file only defines a function that builds a dict
    lexicon = getattr(module, function)()
    return {str(word): float(value) for word, value in lexicon.items()}


@lru_cache(maxsize=1)
def finvader_lexicon() -> dict[str, float]:
    """SentiBigNomics (x0.1) merged with Henry, Henry taking precedence: FinVADER's combined lexicon."""
    root = finvader_dir()
    sentibignomics = _load_module_function(root / "SentiBignomics.py", "lexicon1")
    henry = _load_module_function(root / "Henry.py", "lexicon2")
    scaled = {word: value * SENTIBIGNOMICS_SCALE for word, value in sentibignomics.items()}
    return {**scaled, **henry}


@lru_cache(maxsize=1)
def analyzer():
    """One VADER analyzer with the FinVADER lexicons merged in (as finvader's use_henry+sentibignomics)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()
    vader.lexicon.update(finvader_lexicon())
    return vader


def score(text: str) -> LexiconScore:
    """VADER polarity of `text` under the financial lexicon, with the lexicon words that drove it."""
    vader = analyzer()
    polarity = vader.polarity_scores(text)
    lexicon = vader.lexicon
    words = tuple((word, round(float(lexicon[word]), 4)) for word in _WORD.findall(text.lower()) if word in lexicon)
    return LexiconScore(compound=float(polarity["compound"]), pos=float(polarity["pos"]),
                        neg=float(polarity["neg"]), neu=float(polarity["neu"]), words=words)


def features(texts: list[str]):
    """(len(texts), 4) float32: compound, pos, neg, neu for each text."""
    import numpy as np

    return np.asarray([score(text).vector() for text in texts], dtype=np.float32).reshape(len(texts), len(FEATURES))
