"""ops/stack/postgres.py: password auth only (scram-sha-256, TCP and socket), a private socket
directory, and the migration of a data dir made with trust auth. The integration tests run a
Postgres of their own on free ports."""
from __future__ import annotations

import os
import pwd
import shutil
import stat
from pathlib import Path

import psycopg
import pytest

from ops.stack import process, service
from ops.stack.postgres import HBA, PG_SYSTEM_USER, SHARED_ROOT, Postgres, allows_passwordless, pg_home, \
    traversable_by_others
from streams.errors import StackError
from streams.settings import Settings
from tests.ops.stack.helpers import free_ports, stack_settings


def test_postgres_command_follows_settings(settings: Settings) -> None:
    postgres = Postgres(settings)
    cmd = postgres.command()
    port = settings.postgres_host_port[1]
    assert Path(cmd[0]).name == "postgres"
    assert cmd[1:3] == ["-D", str(postgres.data_dir)]
    assert f"port={port}" in cmd
    assert "listen_addresses=127.0.0.1" in cmd
    assert f"unix_socket_directories={postgres.socket_dir}" in cmd
    assert "unix_socket_permissions=0700" in cmd
    assert not any("algo@" in arg or "password=" in arg for arg in cmd)
    assert postgres.stop_signal.name == "SIGINT"
    assert postgres.endpoint() == f"postgresql://algo:***@127.0.0.1:{port}/algo"


def test_postgres_home_is_reachable_by_its_user(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    home = pg_home(Settings(run_dir=run_dir))
    if os.geteuid() == 0 and not traversable_by_others(run_dir):
        assert home.parent.parent == SHARED_ROOT and home.name == "postgres"
    else:
        assert home == run_dir.absolute() / "postgres"
    assert pg_home(Settings(run_dir=run_dir)) == home  # stable


def test_generated_hba_takes_passwords_only() -> None:
    rules = [line.split() for line in HBA.splitlines() if line and not line.startswith("#")]
    assert {rule[0] for rule in rules} == {"local", "host"}
    assert all(rule[-1] == "scram-sha-256" for rule in rules)
    assert not allows_passwordless(HBA)
    assert allows_passwordless("local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
    assert allows_passwordless("local   all   all   peer  # comment\n")
    assert not allows_passwordless("# local all all trust\nhost all all ::1/128 scram-sha-256\n")


def test_a_url_without_password_is_refused(tmp_path: Path) -> None:
    settings = Settings.from_env({"DATABASE_URL": "postgresql://algo@127.0.0.1:35999/algo",
                                  "ALGO_RUN_DIR": str(tmp_path / "run")})
    with pytest.raises(StackError, match="DATABASE_URL has no password"):
        Postgres(settings).prepare(lambda message: None)


# ---------------------------------------------------------------------------------------------
# a real Postgres of our own


def _own_postgres(tmp_path: Path, password: str = "pg-test-secret") -> Settings:
    return stack_settings(tmp_path / "run", free_ports(), password=password)


def _clean(settings: Settings) -> None:
    postgres = Postgres(settings)
    service.stop(postgres)
    if SHARED_ROOT in postgres.home.parents:  # relocated for the non-root Postgres user: ours to clean
        shutil.rmtree(postgres.home.parent, ignore_errors=True)


def _refused(**kwargs) -> str:
    with pytest.raises(psycopg.OperationalError) as raised:
        psycopg.connect(user="algo", dbname="postgres", connect_timeout=5, passfile="/nonexistent/.pgpass", **kwargs).close()
    return str(raised.value)


def _assert_password_only(settings: Settings) -> None:
    postgres = Postgres(settings)
    host, port = settings.postgres_host_port
    _, password, _ = settings.postgres_user_password_db
    with psycopg.connect(settings.database_url, connect_timeout=5) as conn:  # the password from DATABASE_URL
        assert conn.execute("SELECT current_user").fetchone()[0] == "algo"
        assert conn.execute("SHOW password_encryption").fetchone()[0] == "scram-sha-256"
    for where in ({"host": host, "port": port}, {"host": str(postgres.socket_dir), "port": port}):
        message = _refused(**where, password="")
        assert "password" in message, message
        assert "password authentication failed" in _refused(**where, password="wrong-password")
    with psycopg.connect(host=str(postgres.socket_dir), port=port, user="algo", password=password,
                         dbname="postgres", connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone()[0] == 1
    assert not allows_passwordless(postgres.hba_file.read_text())


@pytest.mark.integration
def test_fresh_postgres_takes_passwords_only_on_tcp_and_socket(tmp_path: Path) -> None:
    settings = _own_postgres(tmp_path)
    try:
        service.ensure(Postgres(settings), lambda message: None)
        _assert_password_only(settings)
        postgres = Postgres(settings)
        for private in (postgres.socket_dir, postgres.home):
            info = private.stat()
            assert stat.S_IMODE(info.st_mode) & 0o077 == 0, oct(info.st_mode)
            if os.geteuid() == 0:
                assert info.st_uid == pwd.getpwnam(PG_SYSTEM_USER).pw_uid
        socket_file = next(postgres.socket_dir.glob(".s.PGSQL.*[0-9]"))
        assert stat.S_IMODE(socket_file.stat().st_mode) & 0o077 == 0
        assert stat.S_IMODE(postgres.hba_file.stat().st_mode) == 0o600
    finally:
        _clean(settings)


@pytest.mark.integration
def test_a_trust_auth_data_dir_is_migrated(tmp_path: Path) -> None:
    """A data dir as the stack made it before: trust on the socket, and no password set at all."""
    settings = _own_postgres(tmp_path, password="migrated-secret")
    postgres = Postgres(settings)
    try:
        postgres._place()
        from ops.stack.postgres import pg_install_dir

        process.run([str(pg_install_dir() / "bin" / "initdb"), "-D", str(postgres.data_dir), "-U", "algo",
                     "-E", "UTF8", "--locale=C", "--auth-local=trust", "--auth-host=trust"],
                    "old-style initdb", postgres.log, user=postgres.user(), cwd=postgres.home)
        assert allows_passwordless(postgres.hba_file.read_text())
        messages: list[str] = []
        service.ensure(postgres, messages.append)
        migrated = [m for m in messages if "migrated" in m]
        assert len(migrated) == 1 and "trust" in migrated[0] and "scram-sha-256" in migrated[0], messages
        _assert_password_only(settings)
        assert "migrated-secret" not in postgres.log.read_text()

        service.stop(postgres)  # the next start finds nothing to migrate
        messages.clear()
        service.ensure(Postgres(settings), messages.append)
        assert not [m for m in messages if "migrated" in m], messages
        _assert_password_only(settings)
    finally:
        _clean(settings)
