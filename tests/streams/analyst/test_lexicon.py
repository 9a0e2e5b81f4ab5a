import subprocess
import sys

import numpy as np
import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from streams.analyst import lexicon


def test_finvader_fixes_operating_profit_fell():
    plain = SentimentIntensityAnalyzer().polarity_scores("Operating profit fell")["compound"]
    fixed = lexicon.score("Operating profit fell")
    assert plain > 0.3  # plain VADER reads "profit" and calls it good news
    assert fixed.compound < -0.3
    assert ("fell", -1.5) in fixed.words and fixed.neg > fixed.pos


def test_lexicons_are_merged_as_finvader_does():
    merged = lexicon.finvader_lexicon()
    assert len(merged) > 7000
    # SentiBigNomics values are scaled by 0.1; Henry's list wins where both have a word
    assert merged["abandon"] == pytest.approx(-0.05)
    assert merged["obstacle"] == -1.5  # SentiBigNomics has -0.3 (scaled: -0.03), Henry -1.5
    vader = lexicon.analyzer()
    assert vader.lexicon["decreased"] == -1.5
    assert "yay" not in merged and vader.lexicon["yay"] == SentimentIntensityAnalyzer().lexicon["yay"]  # VADER keeps its own words
    assert vader.lexicon["good"] == merged["good"]  # and the financial lexicon overrides shared ones


def test_finding_and_loading_finvader_never_imports_it_or_nltk():
    code = ("import sys; from streams.analyst import lexicon; lexicon.score('Sales rose'); "
            "print('finvader' in sys.modules, any(m == 'nltk' or m.startswith('nltk.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_evidence_lists_matched_words_in_order_and_features_have_four_columns():
    scored = lexicon.score("Net sales decreased, but the outlook improved.")
    words = [word for word, _ in scored.words]
    assert words.index("decreased") < words.index("improved")
    assert all(isinstance(v, float) for _, v in scored.words)
    matrix = lexicon.features(["Profit rose sharply.", "The meeting is on Tuesday."])
    assert matrix.shape == (2, 4) and matrix.dtype == np.float32
    assert matrix[0, 0] > 0 and matrix[1, 0] == 0.0 and matrix[1, 3] == 1.0  # neutral sentence: all "neu"


def test_negation_is_handled_by_vader():
    assert lexicon.score("Profitability did not improve.").compound < 0 < lexicon.score("Profitability improved.").compound
