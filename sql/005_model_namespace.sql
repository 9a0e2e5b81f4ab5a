-- Models belong to a namespace (QUANT_MODEL_NAMESPACE, by default the app id ALGO_APP_ID): a quant
-- worker serves only its namespace's models, so the models a test run registers never become
-- current for the developer's workers (streams/quant/model.py). Rows from before were registered
-- under the default app id, 'algo'. A version is unique within its namespace, so the same weights
-- registered by a test run and by the developer are two rows that never touch each other.
ALTER TABLE model_versions ADD COLUMN namespace text NOT NULL DEFAULT 'algo';
ALTER TABLE model_versions ALTER COLUMN namespace DROP DEFAULT;
ALTER TABLE model_versions DROP CONSTRAINT model_versions_version_key;
ALTER TABLE model_versions ADD CONSTRAINT model_versions_namespace_version_key UNIQUE (namespace, version);
DROP INDEX model_versions_current;
CREATE INDEX model_versions_current ON model_versions (namespace, model, registered_at DESC, version_id DESC);
