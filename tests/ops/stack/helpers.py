"""Settings for a stack of our own: free non-default ports and a temporary run dir."""
from __future__ import annotations

import contextlib
import random
import socket
from pathlib import Path

from ops.stack import process
from streams.settings import Settings


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return not process.listening(port)


def free_ports() -> dict[str, int]:
    """Kafka needs port and port+1 (controller); nothing else is fixed. Avoids the defaults."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 40000, 10)
        ports = {"kafka": base, "registry": base + 2, "postgres": base + 3, "redis": base + 4}
        if all(_free(p) for p in (base, base + 1, base + 2, base + 3, base + 4)):
            return ports
    raise RuntimeError("no free ports")


def stack_settings(run_dir: Path, ports: dict[str, int], cache_dir: Path | None = None,
                   password: str = "algo") -> Settings:
    env = {
        "KAFKA_BOOTSTRAP": f"127.0.0.1:{ports['kafka']}",
        "SCHEMA_REGISTRY_URL": f"http://127.0.0.1:{ports['registry']}/apis/ccompat/v7",
        "DATABASE_URL": f"postgresql://algo:{password}@127.0.0.1:{ports['postgres']}/algo",
        "REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
        "ALGO_RUN_DIR": str(run_dir),
    }
    if cache_dir is not None:
        env["ALGO_CACHE_DIR"] = str(cache_dir)
    else:  # share the machine's cache of jars (fetching them is measured elsewhere, not per test)
        env["ALGO_CACHE_DIR"] = str(Settings().cache_dir)
    return Settings.from_env(env)


@contextlib.contextmanager
def secure_part(folder: Path, name: str):
    """One part of the stack in the secure profile, on free ports under `folder`, stopped afterwards."""
    import dataclasses

    from ops.stack.services import start_service, stop_service

    settings = dataclasses.replace(stack_settings(folder / "run", free_ports()), profile="secure")
    try:
        part = start_service(settings, name, progress=lambda message: print(f"[secure] {message}", flush=True))
        assert part.healthy, part.detail
        yield settings
    finally:
        stop_service(settings, name)
