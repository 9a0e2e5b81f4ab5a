"""docker-compose.yml, Dockerfile and ops/stack.env agree with each other and with the local stack."""
from __future__ import annotations

from pathlib import Path

import pytest

from ops.stack import services as stack
from streams.settings import PROJECT_ROOT, Settings

ENDPOINT_VARIABLES = {"KAFKA_BOOTSTRAP", "SCHEMA_REGISTRY_URL", "DATABASE_URL", "REDIS_URL"}


def _env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def test_stack_env_matches_the_settings_defaults() -> None:
    env = _env_file(PROJECT_ROOT / "ops" / "stack.env")
    assert set(env) == ENDPOINT_VARIABLES
    assert Settings.from_env(env) == Settings.from_env({})


def test_dockerfile_installs_the_project_and_runs_algo() -> None:
    text = (PROJECT_ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    assert "pip install -r requirements.txt" in text
    # a wheel, not editable: the package data ships in it (cython comes from pyproject's build requirements,
    # not from requirements.txt, which holds the runtime only)
    assert "pip install --no-deps ." in text and " -e ." not in text
    assert "requirements-test.txt" not in text
    assert 'ENTRYPOINT ["algo"]' in text


@pytest.fixture(scope="module")
def compose() -> dict:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())


def test_compose_services_and_images(compose: dict) -> None:
    services = compose["services"]
    assert services["kafka"]["image"] == f"apache/kafka:{stack.KAFKA_VERSION}"
    assert services["registry"]["image"] == f"apicurio/apicurio-registry:{stack.APICURIO_VERSION}"
    assert services["postgres"]["image"] == "pgvector/pgvector:pg16"
    assert services["redis"]["image"].startswith("redis:7")
    for name in ("kafka", "registry", "postgres", "redis"):
        assert services[name]["healthcheck"]["test"], name
    from streams.workers import WORKERS

    for agent in (name for name, modules in WORKERS.items() if len(modules) == 1):  # every agent, no bundles
        assert services[f"worker-{agent}"]["command"] == ["worker", agent]


def test_compose_app_containers_override_only_the_hosts(compose: dict) -> None:
    local = _env_file(PROJECT_ROOT / "ops" / "stack.env")
    for name in ("provision", *(n for n in compose["services"] if n.startswith("worker-"))):
        service = compose["services"][name]
        assert service["build"] == "." and service["env_file"] == "ops/stack.env"
        environment = service["environment"]
        assert set(environment) == ENDPOINT_VARIABLES
        inside = Settings.from_env(environment)
        assert inside.kafka_host_port == ("kafka", 19092)
        assert inside.registry_host_port[0] == "registry"
        assert inside.postgres_host_port[0] == "postgres"
        assert inside.redis_host_port[0] == "redis"
        # same database, credentials and paths as the local stack: only hosts (and container ports) differ
        assert inside.postgres_user_password_db == Settings.from_env(local).postgres_user_password_db
        assert inside.schema_registry_url.endswith("/apis/ccompat/v7")


def test_compose_registry_storage_is_postgres(compose: dict) -> None:
    registry = compose["services"]["registry"]["environment"]
    assert registry["APICURIO_STORAGE_KIND"] == "sql"
    assert registry["APICURIO_STORAGE_SQL_KIND"] == "postgresql"
    assert registry["APICURIO_DATASOURCE_URL"] == "jdbc:postgresql://postgres:5432/registry"
    assert "CREATE DATABASE registry" in compose["configs"]["postgres-init"]["content"]
    kafka = compose["services"]["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "true"


def test_compose_runs_the_bridge_on_the_mesh(compose: dict) -> None:
    """The README's "same mesh": `algo bridge` in the agents' image, on 127.0.0.1:8000, healthy when
    /healthz answers, started once what it reads from is up and provisioned."""
    services = compose["services"]
    bridge = services["bridge"]
    worker = services["worker-bars"]
    assert (bridge["build"], bridge["image"], bridge["env_file"]) == (worker["build"], worker["image"], worker["env_file"])
    assert bridge["command"] == ["bridge"]  # the image's entrypoint is `algo`
    environment = bridge["environment"]
    inside = Settings.from_env({k: v for k, v in environment.items() if v is not None})
    assert inside.kafka_host_port == ("kafka", 19092) and inside.registry_host_port[0] == "registry"
    assert inside.postgres_host_port[0] == "postgres"
    assert inside.bridge_host == "0.0.0.0" and inside.bridge_port == 8000  # reachable through the port mapping
    assert "ALGO_API_TOKEN" in environment and environment["ALGO_API_TOKEN"] is None  # the host's, never a literal
    assert bridge["ports"] == ["127.0.0.1:8000:8000"]
    test = bridge["healthcheck"]["test"]
    assert test[0] == "CMD" and "http://127.0.0.1:8000/healthz" in " ".join(test)
    depends = bridge["depends_on"]
    for name in ("kafka", "registry", "postgres"):
        assert depends[name]["condition"] == "service_healthy", name
    assert depends["provision"]["condition"] == "service_completed_successfully"


def test_the_bridge_healthcheck_command_checks_healthz(tmp_path) -> None:
    """The healthcheck's own command, run against a stand-in server: 0 for 200, non-zero otherwise."""
    import http.server
    import re
    import subprocess
    import sys
    import threading

    yaml = pytest.importorskip("yaml")
    test = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())["services"]["bridge"]["healthcheck"]["test"]
    assert test[1] == "python"
    statuses = {"/healthz": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            self.send_response(statuses.get(self.path, 404))
            self.end_headers()

        def log_message(self, *args):
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        command = [sys.executable, *(re.sub(r"127\.0\.0\.1:8000", f"127.0.0.1:{server.server_port}", part)
                                     for part in test[2:])]
        assert subprocess.run(command, timeout=30).returncode == 0
        statuses["/healthz"] = 503
        assert subprocess.run(command, timeout=30, capture_output=True).returncode != 0
        server.shutdown()
