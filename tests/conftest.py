"""Shared fixtures. `local_stack`: the default-settings local stack (Settings.from_env()), for
integration tests. Parts that already answer (a stack you started, or docker-compose) are used as
they are; the fixture stops the stack at the end of the session only if nothing was up before it.

The test run has a namespace of its own, set here for the whole session (and inherited by every
worker and bridge the tests start): its app id, paper account and model namespace are TEST_RUN, so
nothing a test registers or trades is seen by the developer's workers (app id `algo`, account
`paper`) or by a demo (account `demo-<time>`)."""
from __future__ import annotations

import os
import uuid

import pytest

from streams.settings import Settings

TEST_RUN = f"test-{uuid.uuid4().hex[:8]}"
# before any test module imports streams.app, which reads the settings once
os.environ.update(ALGO_APP_ID=TEST_RUN, RISK_ACCOUNT=TEST_RUN, QUANT_MODEL_NAMESPACE=TEST_RUN)


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


@pytest.fixture(scope="session", autouse=True)
def kafka_clients_closed():
    """After the session, no librdkafka client (Producer, Consumer, AdminClient) made by a test or by
    the code under test is still alive: one that is keeps reconnecting, and once the stack stops
    the end of the run fills with "Connection refused" lines."""
    yield
    import gc

    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient

    gc.collect()
    clients = (Producer, Consumer, AdminClient)  # type(), not isinstance(): no lazy module attribute is touched
    alive = [type(o).__name__ for o in gc.get_objects() if issubclass(type(o), clients)]
    assert not alive, f"{len(alive)} Kafka client(s) left alive after the tests: {', '.join(sorted(alive))}"
