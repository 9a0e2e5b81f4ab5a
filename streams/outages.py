"""A transient outage is not a poison message: the retry policy for the services the agents use.

ServiceUnavailable (streams.errors) marks a failure of a dependency (the schema registry, Postgres,
Kafka), not of the message in hand. Agents retry such a step with backoff until the service
answers again: the agent's stream waits on that message (Faust commits no offset past it), so
nothing is skipped and nothing is dead-lettered, and the backlog is caught up afterwards. Every
other failure belongs to the message and is dead-lettered with its reason.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Awaitable, Callable, Iterator, TypeVar

import psycopg
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from streams.errors import ServiceUnavailable

REGISTRY = "schema registry"
POSTGRES = "Postgres"
KAFKA = "Kafka"

log = logging.getLogger("algo.outages")
T = TypeVar("T")

# Backoff between tries while a service is down; tests swap in tenacity.wait_none().
wait_while_down = wait_exponential_jitter(multiplier=0.5, max=15, jitter=0.5)


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# Errors that say the database can not serve anyone now, whatever the row: connection refused or
# lost, shutting down, a pool timeout (psycopg_pool.PoolTimeout), or a database not provisioned yet.
POSTGRES_DOWN = (psycopg.OperationalError, psycopg.errors.UndefinedTable)


@contextlib.contextmanager
def postgres_errors() -> Iterator[None]:
    """POSTGRES_DOWN becomes ServiceUnavailable; every other database error (a constraint, a value
    out of range) passes through as the row's own."""
    try:
        yield
    except psycopg.errors.UndefinedTable as error:
        raise ServiceUnavailable(POSTGRES, f"{first_line(error)}; run `algo provision`") from error
    except psycopg.OperationalError as error:
        raise ServiceUnavailable(POSTGRES, first_line(error)) from error


def _log_wait(what: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("%s waits: %s (try %d; next in %.1f s)", what, error, state.attempt_number,
                    state.next_action.sleep if state.next_action else 0.0)
    return before_sleep


async def until_available(step: Callable[..., Awaitable[T]], *args, what: str, **kwargs) -> T:
    """`await step(*args, **kwargs)`, tried again with backoff for as long as it raises
    ServiceUnavailable; any other exception propagates at once. Cancelling (worker shutdown)
    stops the wait."""
    async for attempt in AsyncRetrying(retry=retry_if_exception_type(ServiceUnavailable), wait=wait_while_down,
                                       before_sleep=_log_wait(what), reraise=True):
        with attempt:
            result = await step(*args, **kwargs)
            if attempt.retry_state.attempt_number > 1:
                log.warning("%s goes on: the service is back after %d tries", what, attempt.retry_state.attempt_number)
            return result
    raise AssertionError("unreachable: the retries never stop")  # pragma: no cover
