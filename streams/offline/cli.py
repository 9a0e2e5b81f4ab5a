"""`algo backtest --agents technical,quant`: the streaming agents offline (streams.offline.pipeline),
a summary and the run digest, as a table or one JSON object."""
from __future__ import annotations

import os

from streams.bus.digest import trading_digest
from streams.broker.book import equity
from streams.errors import ConfigError
from streams.market import datasets
from streams.offline.pipeline import OFFLINE_AGENTS, run_offline
from streams.settings import Settings


def parse_agents(text: str) -> tuple[str, ...]:
    agents = tuple(dict.fromkeys(a.strip() for a in text.split(",") if a.strip()))
    if not agents:
        raise ConfigError(f"--agents: name at least one of {', '.join(OFFLINE_AGENTS)}")
    unknown = [a for a in agents if a not in OFFLINE_AGENTS]
    if unknown:
        raise ConfigError(f"--agents: {', '.join(unknown)} cannot run offline (the analyst reads news as a stream); "
                          f"choose from {', '.join(OFFLINE_AGENTS)}")
    return agents


def agents_backtest(settings: Settings, agents: tuple[str, ...], dataset: str | None, csv_path: str | None,
                    symbols: list[str], limit: int | None) -> dict:
    """Runs the agents offline over the bars `algo replay` would publish with the same flags."""
    if csv_path:
        series = datasets.select_symbols(datasets.load_csv(csv_path), symbols, csv_path)
        source = f"replay:csv:{os.path.basename(csv_path)}"
    else:
        series = datasets.load_dataset(dataset or "stocks", symbols)
        source = f"replay:{dataset or 'stocks'}"
    policy = None
    if "quant" in agents:
        from streams.quant import model as quant_model

        policy = quant_model.fetch(settings, settings.quant_model_version or None)
        if policy is None:
            raise ConfigError("no quant model is registered: run `algo quant train` (or the demo), or use "
                              "--agents technical")
    run = run_offline(settings, series, source, agents, policy, limit=limit)
    digest = trading_digest(run.decisions, run.verdicts, run.orders, run.fills, run.book)
    per_symbol = {}
    for fill in run.fills:
        row = per_symbol.setdefault(fill["symbol"], {"fills": 0})
        row["fills"] += 1
    book = run.book
    return {
        "agents": list(agents), "source": source, "symbols": [s.symbol for s in series], "bars": run.bars,
        "signals": run.signals, "decisions": len(run.decisions), "verdicts": len(run.verdicts),
        "orders": len(run.orders), "fills": len(run.fills), "quant_model": run.quant_model,
        "digest": digest["digest"], "parts": digest["parts"],
        "book": {"cash": book["cash"], "equity": equity(book), "realised_pnl": book["realised_pnl"],
                 "fees": book["fees"], "positions": {s: p["quantity"] for s, p in sorted(book["positions"].items())}},
        "actions": {a: sum(1 for d in run.decisions if d["action"] == a) for a in ("BUY", "SELL", "HOLD")},
        "seconds": round(run.seconds, 3),
    }


def print_report(summary: dict) -> None:
    from rich.console import Console

    console = Console()
    book = summary["book"]
    console.print(f"agents {', '.join(summary['agents'])} offline on {summary['source']} "
                  f"({', '.join(summary['symbols'])}): {summary['bars']:,} bars in {summary['seconds']} s")
    console.print(f"decisions {summary['decisions']:,} (BUY {summary['actions']['BUY']:,}, SELL "
                  f"{summary['actions']['SELL']:,}, HOLD {summary['actions']['HOLD']:,}); verdicts "
                  f"{summary['verdicts']:,}; orders {summary['orders']:,}; fills {summary['fills']:,}")
    console.print(f"equity {book['equity']:,.2f} (cash {book['cash']:,.2f}, realised {book['realised_pnl']:+,.2f}, "
                  f"fees {book['fees']:,.2f}); positions "
                  f"{', '.join(f'{s} {q:,.0f}' for s, q in book['positions'].items()) or 'none'}")
    console.print(f"run digest {summary['digest']}"
                  + (f" (quant model {summary['quant_model']})" if summary["quant_model"] else "")
                  + ": `algo demo` and a replay of the same bars through the workers print the same one")
