import csv
import json
from collections import Counter
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from streams.analyst.symbols import Resolution, SymbolTable, packaged_path
from streams.errors import AlgoError, DataError

CORPUS = packaged_path().with_name("news.csv")  # the corpus that ships next to the symbol table
COLUMNS = ["published_at", "symbols", "headline", "summary", "source", "url"]
UTC = timezone.utc


@pytest.fixture(scope="module")
def table() -> SymbolTable:
    return SymbolTable.load()


def symbols(table, headline, body="", declared=(), **kwargs):
    return list(table.resolve(headline, body, declared, **kwargs).symbols)


# --- aliases, case and word boundaries ------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("Apple unveils the iPhone", ["AAPL"]),
    ("Apple Computer posts a loss", ["AAPL"]),
    ("Apple's shares rise", ["AAPL"]),
    ("APPLE BEATS ESTIMATES", ["AAPL"]),
    ("International Business Machines cuts jobs", ["IBM"]),
    ("Big Blue buys a software maker", ["IBM"]),
    ("I.B.M. reports earnings", ["IBM"]),
    ("IBM's Watson wins", ["IBM"]),
    ("Microsoft Corp. launches Windows", ["MSFT"]),
    ("Google+ opens to everyone", ["GOOG"]),
    ("Facebook reaches a billion users", ["FB"]),
])
def test_company_names_and_aliases_resolve(table, text, expected):
    assert symbols(table, text) == expected


@pytest.mark.parametrize("text", [
    "Prices of apple juice rise",  # lower case is fruit
    "Pineapple exports climb",  # inside a longer word
    "Applesauce makers merge",
    "Googled by millions",
    "Microsofts of the world",
    "IBMers gather in Armonk",
    "The Beatles' Apple Corps sues a record shop",  # masked by not_matches
    "Tourists flock to the Big Apple",
    "Big Blue Nation cheers Kentucky",
    "Nokia names a new chief executive",
])
def test_no_match_on_fruit_substrings_or_masked_phrases(table, text):
    resolution = table.resolve(text, "")
    assert resolution.symbols == () and resolution.unknown


def test_masked_phrase_does_not_hide_a_real_mention_elsewhere(table):
    assert symbols(table, "Apple wins its trademark case against Apple Corps") == ["AAPL"]


def test_headline_and_body_are_both_searched_but_not_joined(table):
    assert symbols(table, "Shares slide", "Microsoft warned of slower growth.") == ["MSFT"]
    # 'Big' ending the headline and 'Blue' starting the body are not the alias 'Big Blue'
    assert symbols(table, "Think Big", "Blue skies for chip makers") == []


# --- ticker mentions -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("Shares of the iPod maker (NASDAQ: AAPL) rose", ["AAPL"]),
    ("The search company (Nasdaq:GOOG) fell", ["GOOG"]),
    ("Big deal for (NYSE: IBM).", ["IBM"]),
    ("$FB is up 3% premarket", ["FB"]),
    ("Traders pile into $MSFT and $AAPL", ["AAPL", "MSFT"]),
])
def test_exchange_tickers_and_cashtags_count(table, text, expected):
    assert symbols(table, text) == expected


def test_bare_tickers_dollar_amounts_and_unknown_tickers_do_not_resolve(table):
    resolution = table.resolve("AAPL and FB trade higher on a $1.2 billion deal", "Also (NYSE: HPQ) and $YHOO moved.")
    assert resolution.symbols == ()
    assert resolution.unknown_mentioned == ("HPQ", "YHOO")


# --- declared symbols ------------------------------------------------------------------------------------

def test_declared_symbols_in_the_table_resolve_and_unknown_ones_are_reported(table):
    resolution = table.resolve("Chip maker wins a contract", "", [" ibm", "YHOO", "DELL", "YHOO", ""])
    assert resolution == Resolution(symbols=("IBM",), unknown_declared=("DELL", "YHOO"),
                                    matched=(("IBM", "declared"),))
    assert not resolution.unknown


def test_item_with_only_unknown_declared_symbols_is_unknown(table):
    resolution = table.resolve("Yahoo names a new chief executive", "", ["YHOO"])
    assert resolution.unknown and resolution.unknown_declared == ("YHOO",)


def test_declared_and_named_symbols_are_merged_sorted_and_unique(table):
    resolution = table.resolve("Microsoft offers to buy Yahoo to take on Google", "Microsoft said so.",
                               ["MSFT", "msft"])
    assert resolution.symbols == ("GOOG", "MSFT")
    assert resolution.matched == (("GOOG", "Google"), ("MSFT", "Microsoft"), ("MSFT", "declared"))


def test_multi_company_items_resolve_every_company_named(table):
    text = "Apple and Microsoft beat Google to Nortel's patents while IBM and Facebook watch"
    assert symbols(table, text) == ["AAPL", "FB", "GOOG", "IBM", "MSFT"]


# --- trading life ----------------------------------------------------------------------------------------

def test_as_of_drops_symbols_that_did_not_trade_yet(table):
    resolution = table.resolve("Microsoft invests in Facebook", "", ["FB"],
                               as_of=datetime(2007, 10, 24, 21, tzinfo=UTC))
    assert resolution.symbols == ("MSFT",) and resolution.not_trading == ("FB",)
    assert symbols(table, "Google files for an IPO", as_of=date(2004, 4, 29)) == []
    assert symbols(table, "Google shares start trading", as_of=date(2004, 8, 19)) == ["GOOG"]
    # 2012-05-18 00:30 in New York is still the 17th; the day is taken in UTC
    assert symbols(table, "Facebook prices its IPO", as_of=datetime(2012, 5, 18, 0, 30, tzinfo=UTC)) == ["FB"]
    assert symbols(table, "Facebook prices its IPO", as_of=datetime(2012, 5, 17, 23, 59, tzinfo=UTC)) == []


# --- determinism -----------------------------------------------------------------------------------------

def test_resolution_is_deterministic_across_calls_and_loads(table):
    args = ("Google and Apple clash", "Microsoft, IBM and $FB too; (NYSE: XOM) as well", ["ZZZZ", "AAPL"])
    first = table.resolve(*args)
    assert all(table.resolve(*args) == first for _ in range(20))
    assert SymbolTable.load().resolve(*args) == first
    assert first.symbols == ("AAPL", "FB", "GOOG", "IBM", "MSFT")


# --- the table file --------------------------------------------------------------------------------------

def test_packaged_table_covers_the_five_demo_symbols(table):
    assert table.tickers == ("AAPL", "FB", "GOOG", "IBM", "MSFT")
    assert "aapl" in table and "YHOO" not in table
    assert table.company("GOOG").trading_from == date(2004, 8, 19)
    assert table.company("FB").trading_from == date(2012, 5, 18)
    assert packaged_path().is_file()
    with pytest.raises(DataError, match="not in the symbol table"):
        table.company("YHOO")


def write_table(tmp_path, document) -> Path:
    path = tmp_path / "symbols.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document), encoding="utf-8")
    return path


def test_a_user_table_extends_resolution(tmp_path):
    document = json.loads(packaged_path().read_text(encoding="utf-8"))
    document["symbols"]["YHOO"] = {"name": "Yahoo! Inc.", "aliases": ["Yahoo", "Yahoo!"], "not_matches": [],
                                   "trading_from": "1996-04-12", "trading_to": None}
    extended = SymbolTable.load(write_table(tmp_path, document))
    assert extended.resolve("Microsoft bids for Yahoo", "", ["YHOO"]).symbols == ("MSFT", "YHOO")


@pytest.mark.parametrize("document, message", [
    ("{not json", "not a readable JSON symbol table"),
    ({"symbols": []}, "'symbols' object"),
    ({"symbols": {}}, "no symbols"),
    ({"symbols": {"aapl": {"name": "Apple", "aliases": ["Apple"]}}}, "upper-case"),
    ({"symbols": {"AAPL": {"name": "Apple", "aliases": []}}}, "at least one alias"),
    ({"symbols": {"AAPL": {"name": "Apple", "aliases": ["Apple", 3]}}}, "list of non-empty strings"),
    ({"symbols": {"AAPL": {"name": "Apple", "aliases": ["Apple"], "trading_from": "12/12/1980"}}}, "YYYY-MM-DD"),
    ({"symbols": {"AAPL": {"name": "Apple", "aliases": ["Apple"]},
                  "APLE": {"name": "Apple Hospitality", "aliases": ["Apple"]}}}, "belongs to both"),
])
def test_a_malformed_table_is_a_one_line_error(tmp_path, document, message):
    with pytest.raises(DataError, match=message) as error:
        SymbolTable.load(write_table(tmp_path, document))
    assert isinstance(error.value, AlgoError) and "\n" not in str(error.value)


def test_a_missing_table_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no such symbol table"):
        SymbolTable.load(tmp_path / "absent.json")


# --- the shipped demo corpus -----------------------------------------------------------------------------

TRADING_FROM = {"GOOG": datetime(2004, 8, 19, tzinfo=UTC), "FB": datetime(2012, 5, 18, tzinfo=UTC)}
START, END = datetime(2000, 1, 1, tzinfo=UTC), datetime(2014, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    with CORPUS.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == COLUMNS
        rows = list(reader)
    for row in rows:
        assert None not in row and all(value is not None for value in row.values()), row  # no ragged rows
        row["ts"] = datetime.strptime(row["published_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        row["declared"] = row["symbols"].split()
    return rows


def test_corpus_rows_parse_and_are_plentiful(corpus):
    assert len(corpus) >= 300
    for row in corpus:
        assert START <= row["ts"] < END, row["published_at"]
        assert row["headline"].strip() and row["summary"].strip() and row["source"].strip()
        assert row["url"] == "" or row["url"].startswith("https://")
    headlines = Counter(row["headline"] for row in corpus)
    assert [h for h, n in headlines.items() if n > 1] == []


def test_every_declared_symbol_resolves_from_its_own_row(table, corpus):
    for row in corpus:
        if not row["declared"]:
            continue
        resolution = table.resolve(row["headline"], row["summary"], row["declared"], as_of=row["ts"])
        assert set(row["declared"]) <= set(resolution.symbols), row["headline"]
        assert resolution.unknown_declared == ()
        # the text names every declared company too, so resolution would work without the symbols column
        named = table.resolve(row["headline"], row["summary"], as_of=row["ts"]).symbols
        assert set(row["declared"]) <= set(named), row["headline"]


def test_rows_without_symbols_are_about_companies_not_in_the_table(table, corpus):
    others = [row for row in corpus if not row["declared"]]
    assert len(others) >= 10
    for row in others:
        assert table.resolve(row["headline"], row["summary"], as_of=row["ts"]).unknown, row["headline"]


def test_declared_symbols_fall_inside_their_trading_life(corpus):
    for row in corpus:
        for symbol in row["declared"]:
            assert row["ts"] >= TRADING_FROM.get(symbol, START), (symbol, row["published_at"], row["headline"])
            assert row["ts"] < END


def test_corpus_spreads_over_symbols_and_years(corpus):
    per_symbol = Counter(symbol for row in corpus for symbol in row["declared"])
    assert set(per_symbol) == {"AAPL", "FB", "GOOG", "IBM", "MSFT"}
    assert min(per_symbol.values()) >= 30
    for symbol in ("AAPL", "IBM", "MSFT"):
        years = {row["ts"].year for row in corpus if symbol in row["declared"]}
        assert years == set(range(2000, 2014)), symbol
