"""The agents a worker process can run, by name: shared by the `algo worker` command (ops.cli), the
demo and the bridge (which reads each agent's consumer-group lag: the groups are `<app id>-<name>`)."""
from __future__ import annotations

WORKERS: dict[str, tuple[str, ...]] = {
    "bars": ("streams.market.agents",),
    "persistence": ("streams.vault.agents",),
    "risk": ("streams.risk.agents",),
    "technical": ("streams.technical.agents",),
    "consensus": ("streams.consensus.agents",),
    "broker": ("streams.broker.agents",),
    "quant": ("streams.quant.agents",),
    "analyst": ("streams.analyst.agents",),
    "memory": ("streams.memory.agents",),
}
WORKERS["signals"] = WORKERS["bars"] + WORKERS["technical"] + WORKERS["consensus"]  # ticks -> decisions
WORKERS["all"] = tuple(dict.fromkeys(module for modules in WORKERS.values() for module in modules))


def groups_running(settings, module: str) -> set[str]:
    """The consumer groups of this app whose workers run `module` (one per worker name that includes it)."""
    return {f"{settings.app_id}-{name}" for name, modules in WORKERS.items() if module in modules}


def input_topics(name: str) -> tuple[str, ...]:
    """The topics worker `name`'s agents read (its consumer group's inputs), from the agents
    themselves: imports the worker's modules into this process (they register on the one app)."""
    import importlib

    from streams.app import app

    modules = WORKERS[name]
    for module in modules:
        importlib.import_module(module)
    return tuple(sorted({topic for agent in app.agents.values() if agent.fun.__module__ in modules
                         for topic in agent.channel.topics}))
