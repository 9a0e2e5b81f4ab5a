"""Cache access traces: the CSV every memory tool reads (`time,key,size[,volatility]`) and the
oracleGeneral binary that libCacheSim's baselines (and its Belady) read.

CSV: a header naming the columns (any order), `time` (any finite number; requests are stably sorted
by it), `key` (any string), `size` (a non-negative integer, bytes; 0 counts as 1 in byte mode) and an
optional `volatility` (float >= 0: the volatility of the key's symbol at that time, 0 when absent).
A bad header, value or column is one DataError naming the file, line and column."""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, Sequence

import numpy as np

from streams.errors import DataError
from streams.memory import keys as cache_keys

REQUIRED_COLUMNS = ("time", "key", "size")
OPTIONAL_COLUMNS = ("volatility",)

# libCacheSim's oracleGeneral record: little-endian u32 time, u64 object id, u32 size, i64 index of
# the next request of the same object (-1 if none). 24 bytes, no padding.
ORACLE_GENERAL_DTYPE = np.dtype([("time", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])
assert ORACLE_GENERAL_DTYPE.itemsize == 24
_U32_MAX = np.iinfo(np.uint32).max


@dataclass(frozen=True, eq=False)  # eq=False: numpy fields make the generated __eq__/__hash__ meaningless
class Trace:
    times: np.ndarray       # float64 per request, sorted (stable)
    ids: np.ndarray         # int64 per request: index into `keys`, dense 0..distinct-1 in order of first use
    keys: tuple[str, ...]   # the distinct keys
    sizes: np.ndarray       # int64 per request (bytes)
    volatility: np.ndarray  # float32 per request

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def distinct(self) -> int:
        return len(self.keys)

    def split_index(self, train_fraction: float) -> int:
        """The first scored request: requests [0, split) train, [split, n) are scored."""
        if not 0.0 < train_fraction < 1.0:
            raise DataError(f"train fraction must be in (0, 1), got {train_fraction}")
        return int(math.floor(len(self) * train_fraction))

    def next_access(self) -> np.ndarray:
        """Index of the next request of the same key, -1 if there is none."""
        return self._next_access

    @cached_property
    def _next_access(self) -> np.ndarray:
        nxt = np.full(len(self), -1, dtype=np.int64)
        if len(self) > 1:
            order = np.argsort(self.ids, kind="stable")  # requests grouped by key, in time order
            same = self.ids[order[1:]] == self.ids[order[:-1]]
            nxt[order[:-1][same]] = order[1:][same]
        nxt.flags.writeable = False
        return nxt

    def key_kinds(self) -> np.ndarray:
        """int8 per distinct key: the kind's index (keys.kind_index), OTHER for foreign keys."""
        return self._key_kinds

    @cached_property
    def _key_kinds(self) -> np.ndarray:
        kinds = np.array([cache_keys.kind_index(cache_keys.kind_of(key)) for key in self.keys], dtype=np.int8)
        kinds.flags.writeable = False
        return kinds

    def key_symbols(self) -> tuple[str | None, ...]:
        return self._key_symbols

    @cached_property
    def _key_symbols(self) -> tuple[str | None, ...]:
        return tuple(cache_keys.symbol_of(key) for key in self.keys)

    def byte_sizes(self) -> np.ndarray:
        """Sizes as byte mode counts them (a size of 0 counts as 1)."""
        return np.maximum(self.sizes, 1)


def trace_from_requests(times: Sequence[float] | np.ndarray, keys: Sequence[str], sizes: Sequence[int] | np.ndarray,
                        volatility: Sequence[float] | np.ndarray | None = None) -> Trace:
    """A Trace from per-request columns (stably sorted by time; ids dense in order of first use)."""
    times_array = np.asarray(times, dtype=np.float64)
    sizes_array = np.asarray(sizes, dtype=np.int64)
    n = times_array.shape[0]
    vol_array = np.zeros(n, dtype=np.float32) if volatility is None else np.asarray(volatility, dtype=np.float32)
    if not (len(keys) == n == sizes_array.shape[0] == vol_array.shape[0]):
        raise DataError(f"trace columns differ in length: times {n}, keys {len(keys)}, sizes {sizes_array.shape[0]}, "
                        f"volatility {vol_array.shape[0]}")
    if n and (sizes_array.min() < 0):
        raise DataError("trace sizes must be non-negative")
    if n and not np.isfinite(times_array).all():
        raise DataError("trace times must be finite")
    order = np.argsort(times_array, kind="stable")
    index: dict[str, int] = {}
    ids = np.empty(n, dtype=np.int64)
    for position, request in enumerate(order.tolist()):
        ids[position] = index.setdefault(keys[request], len(index))
    return Trace(times=times_array[order], ids=ids, keys=tuple(index), sizes=sizes_array[order],
                 volatility=vol_array[order])


def read_trace(path: str | os.PathLike) -> Trace:
    name = os.fspath(path)
    try:
        handle = open(name, newline="", encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{name}: cannot read the trace: {exc.strerror or exc}") from exc
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{name} line 1: empty file, expected a header {','.join(REQUIRED_COLUMNS)}") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataError(f"{name} line 1: unreadable header: {exc}") from exc
        columns = [column.strip().lower() for column in header]
        missing = [column for column in REQUIRED_COLUMNS if column not in columns]
        if missing:
            raise DataError(f"{name} line 1: header {','.join(header)!r} lacks column(s) {', '.join(missing)} "
                            f"(expected {','.join(REQUIRED_COLUMNS)}[,volatility])")
        extra = [header[i] for i, column in enumerate(columns) if column not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
        if extra:
            raise DataError(f"{name} line 1: unexpected column(s) {', '.join(repr(c) for c in extra)} "
                            f"(allowed: {','.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)})")
        duplicated = sorted({column for column in columns if columns.count(column) > 1})
        if duplicated:
            raise DataError(f"{name} line 1: column(s) {', '.join(duplicated)} appear more than once")
        time_at, key_at, size_at = (columns.index(column) for column in REQUIRED_COLUMNS)
        vol_at = columns.index("volatility") if "volatility" in columns else None
        width = len(columns)
        times: list[float] = []
        keys: list[str] = []
        sizes: list[int] = []
        vols: list[float] = []
        line = 1
        try:
            for row in reader:
                line = reader.line_num
                if not row:
                    continue  # a blank line
                if len(row) != width:
                    raise DataError(f"{name} line {line}: {len(row)} fields, the header has {width}")
                times.append(_number(row[time_at], name, line, "time"))
                keys.append(row[key_at])
                sizes.append(_size(row[size_at], name, line))
                if vol_at is not None:
                    vols.append(_volatility(row[vol_at], name, line))
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataError(f"{name} line {reader.line_num}: unreadable CSV: {exc}") from exc
    return trace_from_requests(times, keys, sizes, vols if vol_at is not None else None)


def _number(text: str, name: str, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{name} line {line}, column {column}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{name} line {line}, column {column}: {text!r} is not a finite number")
    return value


def _size(text: str, name: str, line: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise DataError(f"{name} line {line}, column size: {text!r} is not an integer number of bytes") from None
    if value < 0:
        raise DataError(f"{name} line {line}, column size: {value} is negative")
    return value


def _volatility(text: str, name: str, line: int) -> float:
    value = _number(text, name, line, "volatility")
    if value < 0:
        raise DataError(f"{name} line {line}, column volatility: {value} is negative")
    return value


def write_trace(path: str | os.PathLike, times: Iterable[float], keys: Sequence[str], sizes: Iterable[int],
                volatility: Iterable[float] | None = None) -> None:
    """Writes a CSV trace (requests in the given order; readers sort stably by time)."""
    times_list = [float(t) for t in times]
    sizes_list = [int(s) for s in sizes]
    vol_list = None if volatility is None else [float(v) for v in volatility]
    if not (len(times_list) == len(keys) == len(sizes_list)) or (vol_list is not None and len(vol_list) != len(keys)):
        raise DataError("write_trace: times, keys, sizes (and volatility) must have one entry per request")
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(REQUIRED_COLUMNS + (OPTIONAL_COLUMNS if vol_list is not None else ()))
        if vol_list is None:
            writer.writerows(zip((repr(t) for t in times_list), keys, sizes_list))
        else:
            writer.writerows(zip((repr(t) for t in times_list), keys, sizes_list, (repr(v) for v in vol_list)))


def write_oracle_general(trace: Trace, path: str | os.PathLike, start: int = 0, end: int | None = None, *,
                         unit_sizes: bool = False) -> int:
    """Writes requests [start, end) as libCacheSim oracleGeneral records; returns how many.

    The next-access field is the index (within the written file) of the same key's next request
    inside [start, end), -1 if none there. unit_sizes writes size 1 (caches counted in objects);
    otherwise sizes are bytes with 0 counted as 1."""
    end = len(trace) if end is None else end
    if not 0 <= start <= end <= len(trace):
        raise DataError(f"oracle slice [{start}, {end}) is outside the trace's {len(trace)} requests")
    count = end - start
    records = np.zeros(count, dtype=ORACLE_GENERAL_DTYPE)
    # The format's time is u32; our times are arbitrary floats. libCacheSim only needs them
    # monotone, so write their dense rank (equal times keep equal ranks).
    times = trace.times[start:end]
    if count:
        records["time"] = np.unique(times, return_inverse=True)[1].astype(np.uint32)
    records["id"] = trace.ids[start:end].astype(np.uint64)
    if unit_sizes:
        records["size"] = 1
    else:
        sizes = trace.byte_sizes()[start:end]
        if count and sizes.max() > _U32_MAX:
            raise DataError(f"a request of {int(sizes.max())} bytes does not fit oracleGeneral's u32 size")
        records["size"] = sizes.astype(np.uint32)
    nxt = trace.next_access()[start:end]
    records["next"] = np.where((nxt >= 0) & (nxt < end), nxt - start, -1)
    records.tofile(os.fspath(path))
    return count
