"""Supervision of one service of the local stack: its pid file, launch as a child in its own session,
the wait for health, the adoption of a running server whose pid file was lost, and the stop
(SIGTERM or the service's own signal, SIGKILL after a timeout)."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import psutil
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_exponential

from ops.stack import process
from ops.stack.process import Progress, alive, as_user, cmdline, port_holder, port_open, sha, tail

from streams.errors import StackError
from streams.settings import Settings


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    endpoint: str
    pid: int | None
    running: bool
    healthy: bool
    detail: str
    log: Path

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "endpoint": self.endpoint,
            "pid": self.pid,
            "running": self.running,
            "healthy": self.healthy,
            "detail": self.detail,
            "log": str(self.log),
        }


class Service:
    """One part of the stack; a subclass says how to configure, start, probe and stop it."""

    name = ""
    start_timeout = 60.0
    stop_timeout = 30.0
    stop_signal = signal.SIGTERM

    def __init__(self, settings: Settings):
        self.settings = settings
        self.run_dir = Path(settings.run_dir).absolute()

    @property
    def dir(self) -> Path:
        return self.run_dir / self.name

    @property
    def pid_file(self) -> Path:
        return self.dir / f"{self.name}.pid"

    @property
    def log(self) -> Path:
        return self.dir / f"{self.name}.log"

    # to override
    def endpoint(self) -> str:
        raise NotImplementedError

    def host_port(self) -> tuple[str, int]:
        raise NotImplementedError

    def ports(self) -> list[int]:
        return [self.host_port()[1]]

    def marker(self) -> str:
        """A string that the service's command line contains (guards against reused pids)."""
        raise NotImplementedError

    def prepare(self, progress: Progress) -> None:
        """Fetch, configure and initialise; runs before every start (idempotent)."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def user(self) -> str | None:
        return None

    def environment(self) -> dict[str, str]:
        """Variables added to the service's environment: secrets go here, never on its command line
        (anyone on the machine reads /proc/<pid>/cmdline; /proc/<pid>/environ only its owner)."""
        return {}

    def probe(self, timeout: float = 2.0) -> tuple[bool, str]:
        raise NotImplementedError

    def after_start(self, progress: Progress) -> None:
        """Runs once healthy, also when it was already running (idempotent)."""

    # shared
    def our_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if alive(pid) and self.marker() in cmdline(pid):
            return pid
        return None

    def launch(self) -> int:
        self.dir.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        env = {**os.environ, **self.environment()}
        with open(self.log, "ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} algo stack: {' '.join(cmd)}\n".encode())
            out.flush()
            try:
                child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.dir, env=env, start_new_session=True, **as_user(self.user()))
            except OSError as error:
                raise StackError(f"{self.name}: could not run {cmd[0]}: {error}") from None
        process.children[child.pid] = child
        self.pid_file.write_text(f"{child.pid}\n")
        return child.pid

    def cds_flags(self, java: str, *key: object) -> list[str]:
        """Class-data sharing: the first run dumps the loaded classes at exit (ArchiveClassesAtExit into
        a .tmp that `stop` keeps only after a clean exit), later runs map the archive (~40% faster JVM
        start). The archive name hashes the JVM and the classpath, so an upgrade makes a new one."""
        real = Path(java).resolve()
        release = real.parent.parent / "release"
        stamp = release.read_text() if release.exists() else str(real.stat().st_mtime)
        name = f"{self.name}-{sha(real, stamp, *key)}.jsa"
        archive = self.dir / name
        for old in self.dir.glob(f"{self.name}-*.jsa*"):
            if old.name not in (name, name + ".tmp"):
                old.unlink(missing_ok=True)
        if archive.exists():
            return [f"-XX:SharedArchiveFile={archive}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]
        return [f"-XX:ArchiveClassesAtExit={archive}.tmp", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]

    def settle_cds(self, clean_exit: bool) -> None:
        for tmp in self.dir.glob(f"{self.name}-*.jsa.tmp"):
            if clean_exit and tmp.stat().st_size > 0:
                tmp.rename(tmp.with_suffix(""))
            else:
                tmp.unlink(missing_ok=True)

    def failure(self, what: str) -> StackError:
        last = tail(self.log)
        hints = []
        if "address already in use" in last.lower():
            for port in self.ports():
                holder = port_holder(port)
                if holder:
                    hints.append(f"port {port} is held by {holder}")
        hints.append(f"full log: {self.log}")
        hints.append("`algo stack down` then `algo stack up` retries; "
                     f"removing {self.dir} starts {self.name} from scratch (its data is lost)")
        return StackError(f"{self.name}: {what}\n--- last lines of {self.log} ---\n{last}\n--- hint: "
                          + "; ".join(hints))


def wait_healthy(service: Service, pid: int | None, timeout: float,
                 probe: Callable[[], tuple[bool, str]] | None = None) -> str:
    """Probes until healthy (backing off from 0.1 s to 0.25 s), failing at once if the process exits."""
    probe = probe or service.probe

    def attempt() -> tuple[bool, str]:
        ok, detail = probe()
        if not ok and pid is not None and not alive(pid):
            raise service.failure(f"exited during start ({detail})")
        return ok, detail

    retrying = Retrying(retry=retry_if_result(lambda outcome: not outcome[0]), stop=stop_after_delay(timeout),
                        wait=wait_exponential(multiplier=0.1, exp_base=1.5, min=0.1, max=0.25))
    try:
        return retrying(attempt)[1]
    except RetryError as error:
        detail = error.last_attempt.result()[1]
        raise service.failure(f"not healthy after {timeout:.0f}s ({detail})") from None


def ensure(service: Service, progress: Progress) -> None:
    started = time.monotonic()
    pid = service.our_pid()
    if pid is not None:
        ok, detail = service.probe()
        if not ok:  # ours but still starting (or sick): give it its start window
            detail = wait_healthy(service, pid, service.start_timeout, getattr(service, "probe_server", None))
        service.after_start(progress)
        progress(f"{service.name}: already running (pid {pid})")
        return
    holder = process.port_holder_pid(service.ports()[0])
    if holder is not None and service.marker() in cmdline(holder):  # ours, its pid file lost: adopt it
        service.dir.mkdir(parents=True, exist_ok=True)
        service.pid_file.write_text(f"{holder}\n")
        wait_healthy(service, holder, service.start_timeout, getattr(service, "probe_server", None))
        service.after_start(progress)
        progress(f"{service.name}: already running (pid {holder}, pid file restored)")
        return
    host = service.host_port()[0]
    for port in service.ports():
        if port_open("127.0.0.1" if host == "localhost" else host, port):
            holder = port_holder(port) or "an unknown process"
            raise StackError(
                f"{service.name}: port {port} is already in use by {holder}, which this stack did not start "
                f"(no live pid in {service.pid_file}). Stop it, or point the stack at another port "
                f"(KAFKA_BOOTSTRAP / SCHEMA_REGISTRY_URL / DATABASE_URL / REDIS_URL)."
            )
    service.prepare(progress)
    pid = service.launch()
    progress(f"{service.name}: started (pid {pid}), waiting for health")
    wait_healthy(service, pid, service.start_timeout, getattr(service, "probe_server", None))
    service.after_start(progress)
    progress(f"{service.name}: healthy in {time.monotonic() - started:.1f}s")


def _gone(pid: int, timeout: float) -> bool:
    """Wait up to `timeout` for `pid` to exit (reaping it when it is our child)."""
    child = process.children.get(pid)
    try:
        if child is not None:
            child.wait(timeout)
        else:
            psutil.Process(pid).wait(timeout)
    except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
        return not alive(pid)
    except psutil.NoSuchProcess:
        pass
    process.children.pop(pid, None)
    return True


def stop(service: Service) -> None:
    """Stop the service by its pid: its stop signal, SIGKILL to its session after `stop_timeout`."""
    pid = service.our_pid()
    if pid is None:
        service.pid_file.unlink(missing_ok=True)
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, service.stop_signal)
    clean = _gone(pid, service.stop_timeout)
    if not clean:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not _gone(pid, 10):
            raise StackError(f"{service.name}: pid {pid} survived SIGKILL")
    with contextlib.suppress(ProcessLookupError, PermissionError):  # stragglers in its session
        os.killpg(pid, signal.SIGKILL)
    service.settle_cds(clean_exit=clean)
    service.pid_file.unlink(missing_ok=True)


def status_of(service: Service) -> ServiceStatus:
    pid = service.our_pid()
    try:
        healthy, detail = service.probe()
    except StackError as error:
        healthy, detail = False, str(error)
    if pid is None and healthy:
        detail += " (answering, but not started by this stack)"
    elif pid is None and not healthy:
        detail = "stopped"
    elif pid is not None and not healthy:
        detail = f"running (pid {pid}) but not healthy: {detail}"
    return ServiceStatus(name=service.name, endpoint=service.endpoint(), pid=pid, running=pid is not None,
                         healthy=healthy, detail=detail, log=service.log)


