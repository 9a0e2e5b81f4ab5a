"""The model registry: Postgres's model_versions, shared by the Quant and the Memory agents'
policies (one row per version, safetensors weights and JSON metadata, never a pickle)."""
from __future__ import annotations

from typing import Callable

from streams.errors import ModelError

WEIGHTS_FORMAT = "safetensors"


def registry_call(settings, work: Callable):
    """work(connection) on an autocommit connection; Postgres's errors become ModelErrors that say
    what to do."""
    import psycopg

    try:
        conn = psycopg.connect(settings.database_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        raise ModelError(f"cannot reach Postgres at {settings.database_url.rpartition('@')[2]} ({error}); "
                         "run `algo stack up` and `algo provision`") from error
    try:
        with conn:
            return work(conn)
    except psycopg.errors.UndefinedTable as error:
        raise ModelError("table model_versions is missing: run `algo provision`") from error
    except psycopg.Error as error:
        raise ModelError(f"model registry: {error}") from error


def version_row(settings, model: str, version: str | None = None):
    """(metadata, artifact, artifact_format) of the pinned version of the namespace, or of the
    model's newest safetensors version; None when there is none."""
    def work(conn):
        if version:
            return conn.execute("SELECT metadata, artifact, artifact_format FROM model_versions "
                                "WHERE namespace = %s AND version = %s", (settings.model_namespace, version)).fetchone()
        return conn.execute("SELECT metadata, artifact, artifact_format FROM model_versions "
                            "WHERE namespace = %s AND model = %s AND artifact_format = %s "
                            "ORDER BY registered_at DESC, version_id DESC LIMIT 1",
                            (settings.model_namespace, model, WEIGHTS_FORMAT)).fetchone()

    return registry_call(settings, work)
