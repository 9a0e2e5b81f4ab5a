"""Where each worker's time goes under load: samples every `ops.cli worker NAME` process that is
running (start `algo demo --speed 0` in another shell, then run this while it replays) with py-spy
for `--seconds`, and prints, per worker, the share of samples in its busiest functions (self time,
and inclusive time of the project's own functions). Writes benchmarks/results/profiles.json and
the raw collapsed stacks under benchmarks/results/profiles/.

    .venv/bin/python benchmarks/profile_workers.py [--seconds 60] [--top 12]

py-spy (PyPI, pinned below) is installed into the venv on first use; it needs ptrace (root, or
kernel.yama.ptrace_scope=0).
"""
from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "profiles.json"
PY_SPY = "py-spy==0.4.2"


def py_spy() -> str:
    binary = Path(sys.executable).with_name("py-spy")
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", PY_SPY], check=True)
    return str(binary)


def workers() -> dict[str, int]:
    found = {}
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmd = process.info["cmdline"] or []
        if "ops.cli" in cmd and "worker" in cmd:
            found[cmd[cmd.index("worker") + 1]] = process.info["pid"]
    return found


def frame_name(frame: str) -> str:
    """'function (path/file.py:line)' -> 'function (path/file.py)': one entry per function."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    short = path.split("site-packages/")[-1] if "site-packages/" in path else path.split(str(ROOT) + "/")[-1]
    return f"{name} ({short})"


def summarise(collapsed: Path, top: int) -> dict:
    self_time: collections.Counter = collections.Counter()
    inclusive: collections.Counter = collections.Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [frame_name(f) for f in stack.split(";") if "(" in f]
        samples += n
        if frames:
            self_time[frames[-1]] += n
        for frame in set(frames):
            if frame.split(" (", 1)[1].startswith(("streams/", "risk_core/")):
                inclusive[frame] += n
    share = lambda c: [{"function": f, "share": round(n / samples, 3)} for f, n in c.most_common(top)]  # noqa: E731
    return {"samples": samples, "self": share(self_time), "project_inclusive": share(inclusive)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--rate", type=int, default=50, help="Samples per second per worker.")
    parser.add_argument("--summarise-only", action="store_true", help="Summarise the last recorded stacks.")
    args = parser.parse_args()
    out_dir = RESULTS.parent / "profiles"
    if args.summarise_only:
        report = {path.stem: summarise(path, args.top) for path in sorted(out_dir.glob("*.txt"))}
        print_report(report, args.top)
        return
    running = workers()
    if not running:
        raise SystemExit("no `algo worker` process is running: start `algo demo --speed 0` first")
    binary = py_spy()
    out_dir.mkdir(parents=True, exist_ok=True)
    recorders = {}
    for name, pid in sorted(running.items()):
        recorders[name] = subprocess.Popen(
            [binary, "record", "--pid", str(pid), "--duration", str(args.seconds), "--rate", str(args.rate),
             "--format", "raw", "--nonblocking", "--output", str(out_dir / f"{name}.txt")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cpu = {name: psutil.Process(pid).cpu_times() for name, pid in running.items()}
    time.sleep(args.seconds)
    for recorder in recorders.values():
        recorder.wait(60)
    report = {}
    for name, pid in sorted(running.items()):
        try:
            after = psutil.Process(pid).cpu_times()
            busy = (after.user + after.system - cpu[name].user - cpu[name].system) / args.seconds
        except psutil.NoSuchProcess:
            busy = None
        path = out_dir / f"{name}.txt"
        report[name] = {"cpu_share_of_one_core": None if busy is None else round(busy, 3),
                        **(summarise(path, args.top) if path.exists() else {"error": "no samples"})}
    RESULTS.write_text(json.dumps({"seconds": args.seconds, "workers": report}, indent=2) + "\n")
    print_report(report, args.top)
    print(f"written to {RESULTS}")


def print_report(report: dict, top: int) -> None:
    for name, row in report.items():
        print(f"== {name}: {row.get('cpu_share_of_one_core', '?')} of a core, {row.get('samples', 0)} samples")
        for item in row.get("self", [])[:top]:
            print(f"   {item['share']:6.1%}  {item['function']}")
        for item in row.get("project_inclusive", [])[:8]:
            print(f"   incl {item['share']:6.1%}  {item['function']}")


if __name__ == "__main__":
    main()
