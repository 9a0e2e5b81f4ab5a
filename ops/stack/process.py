"""Process plumbing for the local stack: liveness and command lines (psutil), who holds a port, log
tails, file locks, and setup commands run to completion with their output in a log."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pwd
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import psutil

from streams.errors import StackError

Progress = Callable[[str], None]
LOG_TAIL_LINES = 30
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

# Children this process started: poll() reaps them, so a dead child is not taken for a live zombie.
children: dict[int, subprocess.Popen] = {}


def is_root() -> bool:
    return os.geteuid() == 0


def alive(pid: int) -> bool:
    """Is `pid` a live process (a zombie is dead, and is reaped when it is our child)?"""
    child = children.get(pid)
    if child is not None and child.poll() is not None:
        children.pop(pid, None)
        return False
    try:
        state = psutil.Process(pid).status()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    if state in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def cmdline(pid: int) -> str:
    """The process' command line joined by spaces ('' when it is gone or hidden)."""
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return ""


def _listeners(port: int) -> list:
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return []
    return [c for c in connections if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port]


def listening(port: int) -> bool:
    """Does any process listen on `port` (any address)?"""
    return bool(_listeners(port))


def port_holder_pid(port: int) -> int | None:
    """The pid of a process listening on `port` (any address), if this user can see it."""
    for connection in _listeners(port):
        if connection.pid is not None:
            return connection.pid
    return None


def port_holder(port: int) -> str | None:
    """Who listens on `port` (any address): 'pid 123 (cmdline)', 'a process ... cannot see', or None."""
    if not listening(port):
        return None
    pid = port_holder_pid(port)
    if pid is None:
        return "a process this user cannot see"
    return f"pid {pid} ({cmdline(pid).strip()[:160]})"


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or f"(log {path} is empty)"


def sha(*parts: object, length: int = 12) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else str(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:length]


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def as_user(user: str | None) -> dict[str, object]:
    """subprocess keyword arguments that run a command as `user` (None: as ourselves)."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def run(cmd: list[str], what: str, log: Path, *, user: str | None = None, timeout: float = 600,
        env: dict[str, str] | None = None, cwd: Path | None = None, stdin: bytes | None = None) -> None:
    """Run a setup command to completion, its output appended to `log`; StackError on failure.
    `stdin` is fed to it (a secret goes there, never on the command line)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
        out.flush()
        feed = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
        try:
            result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, env=env, cwd=cwd,
                                    **feed, **as_user(user))
        except FileNotFoundError as error:
            raise StackError(f"{what}: {error.filename} is not installed; run `bash ops/bootstrap.sh`") from None
        except subprocess.TimeoutExpired:
            raise StackError(f"{what}: timed out after {timeout:.0f}s\n{tail(log)}\n(log: {log})") from None
    if result.returncode != 0:
        raise StackError(f"{what} failed (exit {result.returncode}); last lines of {log}:\n{tail(log)}")


def masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def require_loopback(host: str, what: str) -> None:
    if host not in LOOPBACK:
        raise StackError(
            f"{what} points at {host!r}; the local stack runs on loopback only. "
            f"Unset it (or set it to 127.0.0.1) to use `algo stack`, or manage that service yourself."
        )
