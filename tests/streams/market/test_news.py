from datetime import datetime, timezone

import pytest

from streams.errors import AlgoError
from streams.market.news import load_news, news_id, parse_time, split_symbols

HEADER = "published_at,symbols,headline,summary,source,url\n"
UTC = timezone.utc


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_rows_become_news_items_sorted_by_time(tmp_path):
    path = write(tmp_path, "news.csv", HEADER
                 + '2004-01-15T10:00:00,"aapl, msft",Late one,Its summary,wire,https://example.org/2\n'
                 + '2004-01-14,IBM,"Early, with a comma",,wire,\n')
    early, late = load_news(path)
    assert early == {"id": news_id(datetime(2004, 1, 14, tzinfo=UTC), "wire", "Early, with a comma"),
                     "ts": datetime(2004, 1, 14, tzinfo=UTC), "source": "wire", "headline": "Early, with a comma",
                     "body": "", "symbols": ["IBM"], "url": None}
    assert late["ts"] == datetime(2004, 1, 15, 10, tzinfo=UTC)
    assert late["symbols"] == ["AAPL", "MSFT"] and late["body"] == "Its summary"
    assert late["url"] == "https://example.org/2"


def test_ids_are_derived_so_a_second_read_gives_the_same_ids(tmp_path):
    path = write(tmp_path, "news.csv", HEADER + "2004-01-14,IBM,One,,wire,\n2004-01-14,IBM,Two,,wire,\n")
    first, second = [item["id"] for item in load_news(path)], [item["id"] for item in load_news(path)]
    assert first == second and len(set(first)) == 2
    # the id depends on time, source and headline, not on the summary or symbols
    other = write(tmp_path, "other.csv", HEADER + "2004-01-14T00:00:00+00:00,MSFT,One,changed,wire,x\n")
    assert load_news(other)[0]["id"] == first[0]
    assert news_id(datetime(2004, 1, 14, tzinfo=UTC), "other wire", "One") != first[0]


def test_json_lines_take_symbols_as_a_string_or_a_list(tmp_path):
    path = write(tmp_path, "feed.jsonl",
                 '{"published_at": "2004-01-14T21:05:00Z", "symbols": ["aapl", "goog"], "headline": "A",'
                 ' "summary": "s", "source": "wire", "url": null}\n'
                 '\n'
                 '{"published_at": "2004-01-14T16:00:00-05:00", "symbols": "ibm msft", "headline": "B",'
                 ' "source": "wire"}\n')
    first, second = load_news(path)  # B (21:00 UTC) before A (21:05)
    assert second["headline"] == "A" and second["symbols"] == ["AAPL", "GOOG"] and second["body"] == "s"
    assert first["ts"] == datetime(2004, 1, 14, 21, 0, tzinfo=UTC) and first["symbols"] == ["IBM", "MSFT"]
    assert first["body"] == "" and first["url"] is None


def test_format_is_sniffed_for_other_extensions(tmp_path):
    json_text = '{"published_at": "2004-01-14", "headline": "A", "source": "wire"}\n'
    assert load_news(write(tmp_path, "feed.txt", json_text))[0]["headline"] == "A"
    assert load_news(write(tmp_path, "news.data", HEADER + "2004-01-14,,B,,wire,\n"))[0]["headline"] == "B"


@pytest.mark.parametrize("name, text, message", [
    ("a.csv", "published_at,headline,summary\n2004-01-14,A,\n", "a.csv, line 1: missing column(s) source"),
    ("a.csv", "published_at,headline,source,sumary\n", "a.csv, line 1: unknown column(s) 'sumary'"),
    ("a.csv", HEADER + "2004-01-14,,A,,wire,\n14/01/2004,,B,,wire,\n", "a.csv, line 3: bad published_at '14/01/2004'"),
    ("a.csv", HEADER + "2004-01-14,,A,,wire,\n\n2004-01-15,AAPL,  ,,wire,\n", "a.csv, line 4: empty headline"),
    ("a.csv", HEADER + "2004-01-14,,A,,wire\n", "a.csv, line 2: 5 fields where the header has 6"),
    ("a.csv", HEADER + "2004-01-14,,A,,wire,\n2004-01-14,IBM,A,other,wire,\n", "a.csv, line 3: repeats line 2"),
    ("a.csv", HEADER, "a.csv: no news items"),
    ("a.jsonl", '{"published_at": "2004-01-14", "source": "wire"}\n', "a.jsonl, line 1: missing key(s) headline"),
    ("a.jsonl", '{"published_at": "2004-01-14", "headline": "A", "source": "w"}\nnot json\n', "a.jsonl, line 2: not JSON"),
    ("a.jsonl", '[{"published_at": "2004-01-14"}]\n', "a.jsonl, line 1: a JSON list where JSON lines need one object"),
    ("a.jsonl", '{"published_at": 20040114, "headline": "A", "source": "w"}\n',
     "a.jsonl, line 1: published_at must be a string, not int"),
    ("a.jsonl", '{"published_at": "2004-01-14", "headline": "A", "source": "w", "symbols": 3}\n',
     "a.jsonl, line 1: symbols must be a string or a list of strings"),
])
def test_bad_rows_are_one_line_errors_naming_file_line_and_field(tmp_path, name, text, message):
    path = write(tmp_path, name, text)
    with pytest.raises(AlgoError) as error:
        load_news(path)
    assert str(error.value).startswith(f"{tmp_path / name}") and message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(AlgoError, match="no such file"):
        load_news(tmp_path / "missing.csv")


def test_helpers():
    assert parse_time("2004-01-14") == datetime(2004, 1, 14, tzinfo=UTC)
    assert parse_time("2004-01-14T09:30:00+01:00") == datetime(2004, 1, 14, 8, 30, tzinfo=UTC)
    assert split_symbols(" aapl,,MSFT  aapl ") == ["AAPL", "MSFT"]
    assert split_symbols(["ibm", "brk.b goog"]) == ["IBM", "BRK.B", "GOOG"] and split_symbols(None) == []
