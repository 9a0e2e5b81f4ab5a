import numpy as np
import pytest

from streams.errors import DataError
from streams.memory import keys as cache_keys
from streams.memory.trace import (ORACLE_GENERAL_DTYPE, read_trace, trace_from_requests, write_oracle_general,
                                  write_trace)


def _write(tmp_path, text, name="t.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _brute_next_access(ids):
    result = []
    for i, current in enumerate(ids):
        result.append(next((j for j in range(i + 1, len(ids)) if ids[j] == current), -1))
    return result


def test_reads_columns_in_any_order_and_defaults_volatility(tmp_path):
    trace = read_trace(_write(tmp_path, "key,size,time\nbars:AAPL:1m,100,2\nx,0,1\n"))
    assert trace.keys == ("x", "bars:AAPL:1m")  # sorted by time first, ids in order of first use
    assert trace.ids.tolist() == [0, 1]
    assert trace.sizes.tolist() == [0, 100]
    assert trace.byte_sizes().tolist() == [1, 100]
    assert trace.volatility.tolist() == [0.0, 0.0]
    assert trace.times.dtype == np.float64 and trace.ids.dtype == np.int64 and trace.volatility.dtype == np.float32
    assert trace.key_kinds().tolist() == [cache_keys.kind_index("other"), cache_keys.kind_index("bars")]
    assert trace.key_symbols() == (None, "AAPL")


@pytest.mark.parametrize("text, fragments", [
    ("time,key\n1,a\n", ["line 1", "size"]),
    ("", ["line 1", "empty"]),
    ("time,key,size,owner\n1,a,2,me\n", ["line 1", "'owner'"]),
    ("time,key,size\n1,a,2\nsoon,b,3\n", ["line 3", "column time", "'soon'"]),
    ("time,key,size\n1,a,-5\n", ["line 2", "column size", "negative"]),
    ("time,key,size\n1,a,1.5\n", ["line 2", "column size"]),
    ("time,key,size\n1,a,2,extra\n", ["line 2", "4 fields"]),
    ("time,key,size,volatility\n1,a,2,-0.1\n", ["line 2", "column volatility", "negative"]),
    ("time,key,size\nnan,a,2\n", ["line 2", "column time"]),
])
def test_bad_input_is_one_line_naming_file_line_and_column(tmp_path, text, fragments):
    path = _write(tmp_path, text, "bad.csv")
    with pytest.raises(DataError) as caught:
        read_trace(path)
    message = str(caught.value)
    assert "\n" not in message and "bad.csv" in message
    for fragment in fragments:
        assert fragment in message


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        read_trace(tmp_path / "nope.csv")


def test_sort_by_time_is_stable():
    trace = trace_from_requests([5, 1, 5, 1, 0], ["e", "b", "f", "c", "a"], [1, 2, 3, 4, 5])
    assert [trace.keys[i] for i in trace.ids] == ["a", "b", "c", "e", "f"]
    assert trace.sizes.tolist() == [5, 2, 4, 1, 3]
    assert trace.times.tolist() == [0, 1, 1, 5, 5]


def test_next_access_matches_brute_force():
    rng = np.random.default_rng(3)
    keys = [f"k{value}" for value in rng.integers(0, 40, size=600)]
    trace = trace_from_requests(np.arange(600), keys, np.ones(600, dtype=int))
    assert trace.next_access().tolist() == _brute_next_access(trace.ids.tolist())


def test_split_index_and_bad_fraction():
    trace = trace_from_requests(range(10), [str(i % 3) for i in range(10)], [1] * 10)
    assert trace.split_index(0.5) == 5 and trace.split_index(0.33) == 3
    with pytest.raises(DataError):
        trace.split_index(1.0)


def test_write_and_read_back_csv(tmp_path):
    path = tmp_path / "w.csv"
    keys = ["bars:AAPL:1m", 'odd,"key"', "bars:AAPL:1m"]
    write_trace(path, [0.5, 1.25, 3.0], keys, [10, 0, 10], volatility=[0.1, 0.0, 0.3])
    trace = read_trace(path)
    assert trace.keys == ("bars:AAPL:1m", 'odd,"key"')
    assert trace.times.tolist() == [0.5, 1.25, 3.0]
    assert trace.volatility.tolist() == pytest.approx([0.1, 0.0, 0.3])


def test_oracle_general_records_and_slicing(tmp_path):
    trace = trace_from_requests([0.1, 0.1, 7.5, 9e9, 1e12, 1e12 + 1],
                                ["a", "b", "a", "b", "a", "c"], [10, 0, 10, 0, 10, 3])
    path = tmp_path / "o.bin"
    assert write_oracle_general(trace, path) == 6
    records = np.fromfile(path, dtype=ORACLE_GENERAL_DTYPE)
    assert path.stat().st_size == 6 * 24
    assert records["time"].tolist() == [0, 0, 1, 2, 3, 4]  # dense rank: u32-safe and monotone
    assert records["id"].tolist() == [0, 1, 0, 1, 0, 2]
    assert records["size"].tolist() == [10, 1, 10, 1, 10, 3]
    assert records["next"].tolist() == [2, 3, 4, -1, -1, -1]
    write_oracle_general(trace, path, start=1, end=4, unit_sizes=True)
    records = np.fromfile(path, dtype=ORACLE_GENERAL_DTYPE)
    assert records["size"].tolist() == [1, 1, 1]
    assert records["next"].tolist() == [2, -1, -1]  # indices within the slice; a.next is past `end`
    with pytest.raises(DataError):
        write_oracle_general(trace, path, start=4, end=2)


def test_oracle_general_round_trip_through_libcachesim(tmp_path):
    import libcachesim  # an evaluation-only test dependency (requirements-test.txt)
    rng = np.random.default_rng(0)
    keys = [f"k{value}" for value in rng.integers(0, 30, size=300)]
    sizes = rng.integers(1, 1000, size=300)
    trace = trace_from_requests(np.arange(300) * 1.5, keys, sizes)
    path = tmp_path / "o.bin"
    write_oracle_general(trace, path)
    reader = libcachesim.TraceReader(str(path), libcachesim.TraceType.ORACLE_GENERAL_TRACE)
    requests = [(req.obj_id, req.obj_size, req.next_access_vtime) for req in reader]
    never = np.iinfo(np.int64).max  # libCacheSim reads -1 as "never again"
    assert [r[0] for r in requests] == trace.ids.tolist()
    assert [r[1] for r in requests] == trace.sizes.tolist()
    assert [r[2] for r in requests] == [never if n < 0 else n for n in trace.next_access().tolist()]
