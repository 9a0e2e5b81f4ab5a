"""ops/stack/process.py and service.py: who holds a port, which pid is ours, how a stop ends."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from ops.stack import process, service
from ops.stack.redis import Redis
from streams.errors import StackError
from streams.settings import Settings


def test_port_holder_names_the_listening_process(settings: Settings) -> None:
    port = settings.redis_host_port[1]
    assert process.port_holder(port) is None and not process.listening(port)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        assert process.listening(port)
        assert process.port_holder_pid(port) == os.getpid()
        holder = process.port_holder(port)
        assert holder is not None and holder.startswith(f"pid {os.getpid()} (") and "python" in holder


def test_port_taken_by_a_stranger_is_reported(settings: Settings) -> None:
    port = settings.redis_host_port[1]
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(StackError) as raised:
            service.ensure(Redis(settings), lambda message: None)
    message = str(raised.value)
    assert f"port {port} is already in use by pid {os.getpid()}" in message
    assert "REDIS_URL" in message
    assert not Redis(settings).pid_file.exists()


def test_stale_pid_file_is_not_trusted(settings: Settings) -> None:
    redis = Redis(settings)
    redis.dir.mkdir(parents=True)
    redis.pid_file.write_text(f"{os.getpid()}\n")  # alive, but not a redis-server with our config
    assert redis.our_pid() is None
    redis.pid_file.write_text("999999999\n")
    assert redis.our_pid() is None


def test_liveness_and_command_line_of_a_child() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "marker-arg"])
    process.children[child.pid] = child
    try:
        assert process.alive(child.pid)
        assert "marker-arg" in process.cmdline(child.pid)
    finally:
        child.kill()
        child.wait()
    assert not process.alive(child.pid)  # reaped, not a zombie taken for alive
    assert process.cmdline(child.pid) == ""


class _Sleeper(Redis):
    """A 'service' that ignores SIGTERM, to see the stop escalate to SIGKILL."""
    stop_timeout = 0.5

    def command(self) -> list[str]:
        return [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "time.sleep(60)", self.marker()]


def test_stop_escalates_to_sigkill(settings: Settings) -> None:
    sleeper = _Sleeper(settings)
    pid = sleeper.launch()
    assert sleeper.our_pid() == pid
    service.stop(sleeper)
    assert not process.alive(pid)
    assert not sleeper.pid_file.exists()


def test_secrets_in_the_environment_stay_off_the_command_line(settings: Settings) -> None:
    class Secretive(_Sleeper):
        def environment(self) -> dict[str, str]:
            return {"ALGO_TEST_SECRET": "hunter2-hunter2"}

        def command(self) -> list[str]:
            return [sys.executable, "-c", "import os, time; assert os.environ['ALGO_TEST_SECRET']; time.sleep(60)",
                    self.marker()]

    secretive = Secretive(settings)
    pid = secretive.launch()
    try:
        import psutil

        assert psutil.Process(pid).environ()["ALGO_TEST_SECRET"] == "hunter2-hunter2"
        assert "hunter2" not in " ".join(psutil.Process(pid).cmdline())
        assert "hunter2" not in secretive.log.read_text()
    finally:
        service.stop(secretive)


def test_masked_hides_the_password() -> None:
    assert process.masked("postgresql://algo:pw@127.0.0.1:5432/algo") == "postgresql://algo:***@127.0.0.1:5432/algo"
    assert process.masked("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


class _ProbedService:
    """Just what wait_healthy needs of a service: a failure to raise."""

    def failure(self, what: str) -> StackError:
        return StackError(f"probed: {what}")


def test_wait_healthy_retries_until_the_probe_passes():
    answers = iter([(False, "starting"), (False, "still starting"), (True, "up")])
    assert service.wait_healthy(_ProbedService(), None, 5, probe=lambda: next(answers)) == "up"


def test_wait_healthy_fails_at_once_when_the_process_exits():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    calls = []
    with pytest.raises(StackError, match=r"exited during start \(refused\)"):
        service.wait_healthy(_ProbedService(), dead.pid, 30, probe=lambda: calls.append(1) or (False, "refused"))
    assert len(calls) == 1


def test_wait_healthy_gives_up_after_the_timeout_with_the_last_probe_detail():
    with pytest.raises(StackError, match=r"not healthy after 0s \(closed\)"):
        service.wait_healthy(_ProbedService(), None, 0.3, probe=lambda: (False, "closed"))
