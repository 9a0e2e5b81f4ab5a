"""Integration (real Postgres): models belong to a namespace (QUANT_MODEL_NAMESPACE, by default the app
id), so a model the test run registers is never current for the default namespace, the one the
developer's quant worker (app id `algo`) serves."""
from __future__ import annotations

import dataclasses
import hashlib
import uuid

import psycopg
import pytest

from streams.errors import ModelError
from streams.quant import model as qm
from streams.settings import Settings

pytestmark = pytest.mark.integration


def fake_metadata(version: str) -> tuple[bytes, dict]:
    """A registry row's worth of metadata; the weights are never loaded here."""
    artifact = f"weights of {version}".encode()
    return artifact, {"model": qm.MODEL, "version": version, "algorithm": "PPO", "seed": 0,
                      "data": {"source": "test", "start": None, "end": None, "bars": 0}, "features": {},
                      "hyperparameters": {}, "metrics": {}, "artifact_sha256": hashlib.sha256(artifact).hexdigest()}


def test_a_model_registered_by_the_test_run_is_not_current_for_the_default_namespace(provisioned):
    ours = provisioned
    default = dataclasses.replace(provisioned, model_namespace=Settings().model_namespace)
    other = dataclasses.replace(provisioned, model_namespace=f"{provisioned.model_namespace}-other")
    assert ours.model_namespace.startswith("test-") and default.model_namespace == "algo"
    version = f"quant-ppo-test{uuid.uuid4().hex[:8]}"
    before = qm.current_version(default)
    try:
        assert qm.register(ours, *fake_metadata(version)) == version
        assert qm.current_version(ours) == version
        assert qm.current_version(default) == before != version  # the developer's worker serves what it did
        assert version not in [row["version"] for row in qm.list_versions(default)]
        with pytest.raises(ModelError, match="not registered in namespace 'algo'"):
            qm.fetch(default, version)  # not even when pinned with QUANT_MODEL_VERSION

        # the same version in another namespace is a row of its own: registering it there (it
        # becomes current there) leaves ours untouched, and ours stays current here
        assert qm.register(other, *fake_metadata(version)) == version
        assert qm.current_version(other) == version == qm.current_version(ours)
        with psycopg.connect(provisioned.database_url) as conn:
            rows = conn.execute("SELECT namespace FROM model_versions WHERE version = %s ORDER BY namespace",
                                (version,)).fetchall()
        assert rows == [(ours.model_namespace,), (other.model_namespace,)]
    finally:
        with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
            conn.execute("DELETE FROM model_versions WHERE version = %s", (version,))
