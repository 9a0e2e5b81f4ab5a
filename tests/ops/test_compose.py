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
    assert "pip install --no-deps --no-build-isolation -e ." in text
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
