import pytest

from streams.market.datasets import DATASETS, load_csv, load_dataset
from streams.errors import DataError


def test_bundled_datasets_load_real_data():
    stocks = {s.symbol: s for s in load_dataset("stocks")}
    assert set(stocks) == {"AAPL", "FB", "GOOG", "IBM", "MSFT"} and len(stocks["AAPL"]) == 3270
    assert len(load_dataset("sp500")[0]) == 5031 and set(DATASETS) == {"stocks", "sp500", "nasdaq"}


def test_unknown_dataset_and_symbol_are_explained():
    with pytest.raises(DataError, match="choose one of"):
        load_dataset("nope")
    with pytest.raises(DataError, match="no symbol"):
        load_dataset("stocks", ["TSLA"])


def test_csv_roundtrip_and_symbol_from_file_name(tmp_path):
    path = tmp_path / "acme.csv"
    path.write_text("Date,Open,High,Low,Close,Volume\n2020-01-03,2,3,1,2.5,10\n2020-01-02,1,2,1,1.5,5\n")
    [series] = load_csv(path)
    assert series.symbol == "ACME" and list(series.close) == [1.5, 2.5]


@pytest.mark.parametrize("body,message", [
    ("date,open,high,low,close\n2020-01-02,1,2,1,1\n", "missing column"),
    ("date,open,high,low,close,volume\n2020-01-02,1,2,1,nan,5\n", "bad close"),
    ("date,open,high,low,close,volume\n2020-01-02,1,0.5,1,1,5\n", "high/low"),
    ("date,open,high,low,close,volume\nnot-a-date,1,2,1,1,5\n", "date"),
])
def test_bad_csv_rows_are_named(tmp_path, body, message):
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(DataError, match=message):
        load_csv(path)
