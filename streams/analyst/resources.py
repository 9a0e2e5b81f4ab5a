"""Where the Analyst's shipped files are: the demo news corpus, the symbol table, the labelled
sentences and the trained classifier (package data under streams/analyst/data/)."""
from __future__ import annotations

from importlib import resources
from pathlib import Path


def data_dir() -> Path:
    return Path(str(resources.files("streams.analyst").joinpath("data")))


def demo_corpus() -> Path:
    """The demo news corpus (see data/NEWS.md): dated headlines of public events, 2000-2013."""
    return data_dir() / "news.csv"
