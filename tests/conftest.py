"""Shared fixtures. `local_stack`: the default-settings local stack (Settings.from_env()), for
integration tests. Parts that already answer (a stack you started, or docker-compose) are used as
they are; the fixture stops the stack at the end of the session only if nothing was up before it."""
from __future__ import annotations

import pytest

from streams.settings import Settings


@pytest.fixture(scope="session")
def local_stack() -> Settings:
    from ops.stack import services as stack

    settings = Settings.from_env()
    before = stack.status(settings)
    if all(part.healthy for part in before):
        yield settings
        return
    ours = not any(part.running or part.healthy for part in before)
    try:
        stack.up(settings, progress=lambda message: print(f"[stack] {message}", flush=True))
    except Exception:
        if ours:
            stack.down(settings)
        raise
    try:
        yield settings
    finally:
        if ours:
            stack.down(settings)


@pytest.fixture(scope="session")
def provisioned(local_stack) -> Settings:
    """The local stack with topics, schemas and migrations in place."""
    from ops.provision import provision

    provision(local_stack, progress=lambda _: None)
    return local_stack
