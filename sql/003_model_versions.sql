-- Trained policies, versioned. The artifact (the stable-baselines3 zip) lives in the row, so any
-- worker that reaches Postgres can serve any version. The serving agent loads the most recently
-- registered version (registered_at; registering an old version again makes it current: a
-- rollback) unless QUANT_MODEL_VERSION pins one.
CREATE TABLE model_versions (
    version_id      bigserial   PRIMARY KEY,
    model           text        NOT NULL,
    version         text        NOT NULL UNIQUE,
    algorithm       text        NOT NULL,
    seed            bigint,
    data_source     text        NOT NULL,
    data_start      timestamptz,
    data_end        timestamptz,
    bars            bigint      NOT NULL,
    features        jsonb       NOT NULL,
    hyperparameters jsonb       NOT NULL,
    metrics         jsonb       NOT NULL DEFAULT '{}',
    metadata        jsonb       NOT NULL,
    artifact        bytea       NOT NULL,
    artifact_sha256 text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    registered_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX model_versions_current ON model_versions (model, registered_at DESC, version_id DESC);
