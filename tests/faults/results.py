"""The fault suite's figures, per scenario, in benchmarks/results/faults.json (a scenario that runs
again replaces its own entry; the others stay)."""
from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "faults.json"


def record_scenario(name: str, figures: dict) -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    try:
        results = json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        results = {"benchmark": "faults", "scenarios": {}}
    results["scenarios"][name] = {**figures, "commit": commit,
                                  "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
