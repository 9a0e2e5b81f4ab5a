-- Model weights without pickle: a policy is stored as its network's weights in safetensors (tensors
-- only) with its architecture in `metadata`, and rebuilt from them (streams/quant/model.py). Rows
-- registered before hold stable-baselines3 zips, whose parts are pickles: they stay for the record,
-- marked 'sb3-zip', and are never loaded or served. New rows name their format explicitly.
ALTER TABLE model_versions
    ADD COLUMN artifact_format text NOT NULL DEFAULT 'sb3-zip'
    CHECK (artifact_format IN ('sb3-zip', 'safetensors'));
ALTER TABLE model_versions ALTER COLUMN artifact_format DROP DEFAULT;
