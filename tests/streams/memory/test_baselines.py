import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from streams.memory.baselines import POLICIES, BaselineError, baseline_miss_ratios, baseline_results
from streams.memory.synthetic import generate
from streams.memory.trace import trace_from_requests

ROOT = Path(__file__).resolve().parents[3]


def _min_without_bypass(trace, capacity, count_from):
    """Belady's MIN that admits every miss (evicts the cached key used farthest in the future)."""
    next_access = trace.next_access().tolist()
    cache, misses = {}, 0
    for index, key in enumerate(trace.ids.tolist()):
        upcoming = next_access[index] if next_access[index] >= 0 else float("inf")
        if key not in cache:
            misses += index >= count_from
            if len(cache) >= capacity:
                del cache[max(cache, key=cache.get)]
        cache[key] = upcoming
    return misses


@pytest.fixture(scope="module")
def drift_trace():
    return generate("zipf-drift", 6000, 12)


def test_belady_below_every_policy_and_strictly_below_lru(drift_trace):
    split = drift_trace.split_index(0.5)
    for capacity in (20, 100):
        results = baseline_miss_ratios(drift_trace, split, capacity, use_bytes=False)
        assert set(results) == set(POLICIES)
        belady = results["Belady"]["miss_ratio"]
        assert all(belady <= entry["miss_ratio"] for entry in results.values())
        assert belady < results["LRU"]["miss_ratio"]
        assert results["Belady"]["misses"] == _min_without_bypass(drift_trace, capacity, split)
        assert all(entry["requests"] == len(drift_trace) - split for entry in results.values())


def test_byte_mode_uses_belady_size_and_counts_bytes(drift_trace):
    split = drift_trace.split_index(0.5)
    capacity = int(drift_trace.sizes.mean() * 80)
    results = baseline_miss_ratios(drift_trace, split, capacity, use_bytes=True)
    assert results["Belady"]["implementation"] == "libcachesim.BeladySize"
    scored_bytes = int(drift_trace.byte_sizes()[split:].sum())
    for entry in results.values():
        assert entry["bytes_requested"] == scored_bytes
        assert 0 < entry["bytes_missed"] <= scored_bytes
    assert results["Belady"]["byte_miss_ratio"] < results["LRU"]["byte_miss_ratio"]


def test_warm_up_is_shared_and_not_counted():
    keys = [f"k{i}" for i in range(50)]
    trace = trace_from_requests(range(100), keys + keys, [10] * 100)  # the scored half repeats the train half
    held = baseline_miss_ratios(trace, 50, 50, use_bytes=False)
    assert {name: entry["misses"] for name, entry in held.items()} == {name: 0 for name in POLICIES}
    # one object short, LRU's cyclic worst case misses every scored request; Belady only 1 in 50
    short = baseline_miss_ratios(trace, 50, 49, use_bytes=False)
    assert short["LRU"]["misses"] == 50 and short["Belady"]["misses"] == 1
    # the same in bytes: the cache holds the 500 bytes, or 490
    assert baseline_miss_ratios(trace, 50, 500, use_bytes=True)["LRU"]["bytes_missed"] == 0
    assert baseline_miss_ratios(trace, 50, 490, use_bytes=True)["LRU"]["bytes_missed"] == 500


def test_several_capacities_from_one_file_and_small_caches_skipped(drift_trace):
    results = baseline_results(drift_trace, 3000, [3, 40], use_bytes=False, policies=["LRU", "WTinyLFU", "S3-FIFO"])
    assert results[3]["WTinyLFU"]["miss_ratio"] is None and "at least 8" in results[3]["WTinyLFU"]["skipped"]
    assert results[3]["S3-FIFO"]["miss_ratio"] is None
    # with room for two objects per queue they admit (libCacheSim's defaults would miss every request here)
    assert results[40]["WTinyLFU"]["miss_ratio"] < 1.0 and results[40]["S3-FIFO"]["miss_ratio"] < 1.0


def test_bad_arguments(drift_trace):
    with pytest.raises(BaselineError, match="count_from"):
        baseline_miss_ratios(drift_trace, len(drift_trace), 10, use_bytes=False)
    with pytest.raises(BaselineError, match="at least 1"):
        baseline_miss_ratios(drift_trace, 0, 0, use_bytes=False)


def test_missing_libcachesim_is_one_line(monkeypatch, drift_trace):
    monkeypatch.setitem(sys.modules, "libcachesim", None)  # makes `import libcachesim` raise ImportError
    with pytest.raises(BaselineError) as caught:
        baseline_miss_ratios(drift_trace, 10, 10, use_bytes=False)
    assert str(caught.value) == ("libcachesim is not installed: pip install libcachesim==0.3.5 "
                                 "(GPL-3.0, an optional evaluation tool the pipeline never imports)")


def _libcachesim_contract():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert config.get("include_external_packages") is True
    return next(c for c in config["contracts"] if c["type"] == "forbidden" and "libcachesim" in c["forbidden_modules"])


def test_contract_is_declared_and_only_baselines_imports_libcachesim():
    contract = _libcachesim_contract()
    assert contract["source_modules"] == ["streams", "ops"]
    assert contract["ignore_imports"] == ["streams.memory.baselines -> libcachesim"]
    sources = [path for folder in ("streams", "ops") for path in (ROOT / folder).rglob("*.py")]
    importers = [path.relative_to(ROOT).as_posix() for path in sources
                 if "import libcachesim" in path.read_text() or "from libcachesim" in path.read_text()]
    assert importers == ["streams/memory/baselines.py"]


def test_contract_breaks_when_another_module_imports_libcachesim(tmp_path):
    """The same contract, run by import-linter on a miniature project with one offender."""
    contract = _libcachesim_contract()
    for module, text in {"streams/__init__.py": "", "streams/memory/__init__.py": "",
                         "streams/memory/baselines.py": "def run():\n    import libcachesim\n",
                         "streams/memory/store.py": "import libcachesim\n", "ops/__init__.py": ""}.items():
        (tmp_path / module).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / module).write_text(text)
    lines = ["[tool.importlinter]", 'root_packages = ["streams", "ops"]', "include_external_packages = true", "",
             "[[tool.importlinter.contracts]]"]
    lines += [f"{name} = {json.dumps(value)}" for name, value in contract.items()]  # JSON scalars/arrays are TOML
    (tmp_path / "pyproject.toml").write_text("\n".join(lines) + "\n")
    lint = Path(sys.executable).with_name("lint-imports")

    def run():
        return subprocess.run([str(lint), "--config", "pyproject.toml", "--no-cache"], cwd=tmp_path,
                              env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
                              capture_output=True, text=True, timeout=60)

    broken = run()
    assert broken.returncode != 0 and "streams.memory.store -> libcachesim" in broken.stdout
    (tmp_path / "streams/memory/store.py").write_text("")
    kept = run()
    assert kept.returncode == 0, kept.stdout + kept.stderr
