"""The one Settings: the environment read in one place, domain settings as frozen parts of it, one-line
errors at start-up for malformed values and unknown names, the API token's minimum length, the worker
named on the command line, and the test run's own namespace."""
import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams import settings as settings_module
from streams.errors import ConfigError
from streams.settings import (MIN_API_TOKEN_LENGTH, BrokerSettings, ConsensusRules, RiskSettings, Settings, configure,
                              get_settings, parse_interval)


def test_defaults_point_at_the_local_stack():
    s = Settings.from_env({})
    assert s.kafka_host_port == ("127.0.0.1", 9092)
    assert s.registry_host_port == ("127.0.0.1", 8081) and s.schema_registry_url.endswith("/apis/ccompat/v7")
    assert s.postgres_host_port == ("127.0.0.1", 5432) and s.redis_host_port == ("127.0.0.1", 6379)


def test_environment_overrides_and_librdkafka_keys():
    s = Settings.from_env({"KAFKA_BOOTSTRAP": "kafka:29092", "DATABASE_URL": "postgresql://u:p@db:6543/x",
                           "BAR_INTERVAL": "15m"})
    assert s.kafka_config({"group.id": "g", "enable.auto.commit": False}) == {
        "bootstrap.servers": "kafka:29092", "client.id": "algo", "group.id": "g", "enable.auto.commit": False}
    assert s.faust_broker == "kafka://kafka:29092"
    assert s.postgres_host_port == ("db", 6543) and s.postgres_user_password_db == ("u", "p", "x")
    assert s.bar_interval_seconds == 900


@pytest.mark.parametrize("text", ["", "d", "0d", "5w", "1.5h"])
def test_bad_intervals_say_what_is_expected(text):
    with pytest.raises(ConfigError, match="interval"):
        parse_interval(text)


def test_bad_numbers_name_the_variable():
    with pytest.raises(ConfigError, match="BRIDGE_PORT"):
        Settings.from_env({"BRIDGE_PORT": "eighty"})


# --- the one Settings: domain parts, bad values, unknown names, the token, the worker -----------------------

ROOT = Path(__file__).resolve().parents[2]


def test_domain_settings_are_frozen_parts_of_the_one_settings_under_their_old_names():
    s = Settings.from_env({"RISK_MAX_GROSS_EXPOSURE": "2.5", "RISK_MAX_ORDERS_PER_WINDOW": "7", "RISK_ACCOUNT": "acct",
                           "RISK_INITIAL_CASH": "2500", "BROKER_FEE_BPS": "3", "BROKER_SLIPPAGE_BPS": "0.5",
                           "CONSENSUS_WEIGHTS": "technical=0,quant=2", "CONSENSUS_MIN_SCORE": "0.3",
                           "CONSENSUS_WINDOW_S": "60", "CONSENSUS_MIN_AGREEMENT": "0.5",
                           "CONSENSUS_MAX_POSITION": "0.1", "CONSENSUS_BAR_AGENTS": "quant, technical",
                           "CONSENSUS_AGENT_TIMEOUT_S": "5", "RISK_MIN_REBALANCE": "0.05"})
    assert s.risk == RiskSettings(account="acct", initial_cash=2500.0, max_gross_exposure=2.5, max_orders_per_window=7,
                                  min_rebalance=0.05)
    assert s.broker == BrokerSettings(account="acct", initial_cash=2500.0, fee_bps=3.0, slippage_bps=0.5)  # one book
    assert s.consensus == ConsensusRules(weights={"technical": 0.0, "quant": 2.0}, min_score=0.3, window_s=60.0,
                                         min_agreement=0.5, max_position=0.1, bar_agents=("quant", "technical"),
                                         agent_timeout_s=5.0)
    with pytest.raises(ConfigError, match="CONSENSUS_MIN_CHANGE is no longer read: the consensus decides every bar"):
        Settings.from_env({"CONSENSUS_MIN_CHANGE": "0.2"})
    assert isinstance(s.risk.max_orders_per_window, int)
    for part, name in ((s, "app_id"), (s.risk, "max_var"), (s.broker, "fee_bps"), (s.consensus, "min_score")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(part, name, 1)
    # every risk field is read from RISK_<FIELD>, as before
    for f in dataclasses.fields(RiskSettings):
        if f.type in ("float", "int"):
            assert getattr(Settings.from_env({f"RISK_{f.name.upper()}": "4"}).risk, f.name) == 4
    assert Settings.from_env({}).risk == RiskSettings() and Settings.from_env({}).consensus == ConsensusRules()


def test_the_domain_classes_parse_as_settings_does():
    assert RiskSettings.from_env({"RISK_MAX_VAR": "0.05"}).max_var == 0.05
    assert BrokerSettings.from_env({"RISK_ACCOUNT": "x"}).account == "x"
    assert ConsensusRules.from_env({"CONSENSUS_WEIGHTS": "quant=1"}).weight("technical") == 0.0
    with pytest.raises(ConfigError, match="RISK_MAX_POSITON"):
        RiskSettings.from_env({"RISK_MAX_POSITON": "1"})


@pytest.mark.parametrize("name, value, expected", [
    ("RISK_MAX_VAR", "lots", "RISK_MAX_VAR='lots' is not a number"),
    ("RISK_MAX_ORDERS_PER_WINDOW", "1.5", "RISK_MAX_ORDERS_PER_WINDOW='1.5' is not an integer"),
    ("RISK_MAX_DRAWDOWN", "-0.1", "RISK_MAX_DRAWDOWN='-0.1': must be at least 0"),
    ("RISK_MAX_DAILY_LOSS", "nan", "RISK_MAX_DAILY_LOSS='nan' is not a finite number"),
    ("BROKER_FEE_BPS", "one", "BROKER_FEE_BPS='one' is not a number"),
    ("BROKER_SLIPPAGE_BPS", "inf", "BROKER_SLIPPAGE_BPS='inf' is not a finite number"),
    ("CONSENSUS_MIN_SCORE", "high", "CONSENSUS_MIN_SCORE='high' is not a number"),
    ("CONSENSUS_WEIGHTS", "technical:1", "CONSENSUS_WEIGHTS: 'technical:1' is not agent=weight"),
    ("CONSENSUS_WEIGHTS", "quant=-1", "CONSENSUS_WEIGHTS: 'quant=-1' is negative"),
    ("BRIDGE_PORT", "eighty", "BRIDGE_PORT='eighty' is not an integer"),
    ("BRIDGE_PORT", "70000", "BRIDGE_PORT='70000': must be between 1 and 65535"),
    ("TOPIC_PARTITIONS", "0", "TOPIC_PARTITIONS='0': must be at least 1"),
    ("PERSIST_BATCH_SIZE", "many", "PERSIST_BATCH_SIZE='many' is not an integer"),
    ("QUANT_MODEL_POLL_S", "0", "QUANT_MODEL_POLL_S='0': must be at least 0.1"),
    ("ALGO_OFFSET_RESET", "newest", "ALGO_OFFSET_RESET='newest': use earliest or latest"),
    ("BAR_INTERVAL", "5w", "BAR_INTERVAL='5w': bad interval"),
    ("ALGO_APP_ID", "my app", "ALGO_APP_ID='my app': use letters, digits"),
    ("QUANT_MODEL_NAMESPACE", "a/b", "QUANT_MODEL_NAMESPACE='a/b': use letters, digits"),
])
def test_a_malformed_value_fails_with_one_line_naming_the_variable(name, value, expected):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({name: value})
    assert str(error.value).startswith(expected) and "\n" not in str(error.value)


@pytest.mark.parametrize("name, suggestion", [
    ("RISK_MAX_POSITON", "RISK_MAX_POSITION_NOTIONAL"), ("BROKER_FEES_BPS", "BROKER_FEE_BPS"),
    ("CONSENSUS_WEIGHT", "CONSENSUS_WEIGHTS"), ("QUANT_MODEL_VERSON", "QUANT_MODEL_VERSION"),
    ("ALGO_API_TOKN", "ALGO_API_TOKEN"), ("BAR_INTERVALS", "BAR_INTERVAL"), ("PERSIST_BATCH", "PERSIST_BATCH_SIZE"),
    ("BRIDGE_PROT", "BRIDGE_PORT"),
    ("CONSENSUS_PRIOR_CALLS", None),  # a rule that has no variable (it never had one) is not silently ignored
])
def test_an_unknown_variable_under_the_projects_prefixes_fails_start_up(name, suggestion):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({name: "1"})
    message = str(error.value)
    assert message.startswith(f"{name} is not a setting") and "\n" not in message
    assert suggestion is None or f"did you mean {suggestion}?" in message
    assert message.endswith("(variables under ALGO_, ANALYST_, BAR_, BRIDGE_, BROKER_, CONSENSUS_, MEMORY_, PERSIST_, QUANT_, RISK_ "
                            "are this project's)")


def test_variables_that_are_not_ours_are_left_alone():
    foreign = {"KAFKA_HEAP_OPTS": "-Xmx1g", "POSTGRES_PASSWORD": "x", "REDIS_PORT": "1", "TOPIC_ALREADY_EXISTS": "1",
               "RISKY": "1", "ALGORITHM": "ppo", "BARS": "1", "ALGO_DEBUG_BUILD": "1", "BRIDGE_FUZZ_EXAMPLES": "5"}
    assert Settings.from_env(foreign) == Settings.from_env({})
    assert set(settings_module.OWN_PREFIXES) == {"ALGO_", "ANALYST_", "BAR_", "BRIDGE_", "BROKER_", "CONSENSUS_", "MEMORY_", "PERSIST_",
                                                 "QUANT_", "RISK_"}


def test_algo_worker_is_no_longer_a_variable():
    with pytest.raises(ConfigError, match=re.escape("ALGO_WORKER is no longer read: name the worker on the command "
                                                    "line: `algo worker NAME`")):
        Settings.from_env({"ALGO_WORKER": "risk"})


def test_a_short_api_token_is_refused_and_never_echoed():
    short = "x" * (MIN_API_TOKEN_LENGTH - 1)
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"ALGO_API_TOKEN": short})
    assert str(error.value).startswith(f"ALGO_API_TOKEN is {len(short)} characters: use at least 16")
    assert short not in str(error.value)
    with pytest.raises(ConfigError, match="ALGO_API_TOKEN"):  # however the Settings are built
        dataclasses.replace(Settings(), api_token="short")
    assert Settings.from_env({"ALGO_API_TOKEN": "y" * MIN_API_TOKEN_LENGTH}).api_token == "y" * 16
    assert Settings.from_env({"ALGO_API_TOKEN": ""}).api_token == ""  # empty: the bridge generates one


def test_an_empty_token_still_means_the_bridge_generates_one():
    from streams.bridge.server import with_token

    settings, generated = with_token(Settings.from_env({"ALGO_API_TOKEN": ""}))
    assert generated and len(settings.api_token) >= MIN_API_TOKEN_LENGTH


def test_the_worker_is_named_by_configure_never_by_the_environment(monkeypatch):
    monkeypatch.setattr(settings_module, "_command_line", {})
    assert get_settings().worker == "all"
    configure(worker="risk")
    assert get_settings().worker == "risk" and Settings.from_env({}).worker == "all"
    with pytest.raises(ConfigError, match="worker name"):
        configure(worker="risk; rm")


def test_the_test_run_has_its_own_app_id_account_and_model_namespace():
    from tests.conftest import TEST_RUN

    s = Settings.from_env()
    assert re.fullmatch(r"test-[0-9a-f]{8}", TEST_RUN)
    assert s.app_id == s.risk.account == s.broker.account == s.model_namespace == TEST_RUN
    assert Settings.from_env({}).model_namespace == "algo"  # the default namespace is the default app id
    assert Settings.from_env({"ALGO_APP_ID": "x"}).model_namespace == "x"


def test_nothing_but_settings_reads_the_environment():
    """streams/ and ops/ read variables through Settings only; building a child's environment
    (`{**os.environ, ...}`) passes configuration down and is allowed."""
    reads = re.compile(r"os\.getenv|environ\.get\(|environ\[|environ\.setdefault|from_env\(os\.environ")
    offenders = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
                 for package in ("streams", "ops") for path in sorted((ROOT / package).rglob("*.py"))
                 if path != ROOT / "streams" / "settings.py"
                 for number, line in enumerate(path.read_text().splitlines(), 1) if reads.search(line)]
    assert offenders == []


def _one_line_error(result_output: str) -> str:
    lines = [line for line in result_output.splitlines() if line.strip()]
    assert len(lines) == 1, result_output
    return lines[0]


@pytest.mark.parametrize("variable, value, expected", [
    ("RISK_MAX_VAR", "lots", "error: RISK_MAX_VAR='lots' is not a number"),
    ("RISK_MAX_POSITON", "1000", "error: RISK_MAX_POSITON is not a setting (did you mean RISK_MAX_POSITION_NOTIONAL?)"),
])
def test_algo_worker_with_a_bad_setting_exits_1_with_one_line(variable, value, expected):
    env = {k: v for k, v in os.environ.items() if not k.startswith(settings_module.OWN_PREFIXES)}
    result = subprocess.run([sys.executable, "-m", "ops.cli", "worker", "risk"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, env={**env, variable: value})
    assert result.returncode == 1, result.stdout + result.stderr
    assert _one_line_error(result.stderr).startswith(expected) and result.stdout == ""


def test_every_command_checks_the_settings_first():
    from ops.cli import cli

    result = CliRunner().invoke(cli, ["provision"], env={"ALGO_API_TOKEN": "short"})
    assert result.exit_code == 1
    assert _one_line_error(result.output).startswith("error: ALGO_API_TOKEN is 5 characters: use at least 16")


def test_faust_own_broker_variables_are_not_taken_for_typos_of_ours():
    settings = Settings.from_env({"BROKER_COMMIT_INTERVAL": "2.0", "BROKER_SESSION_TIMEOUT": "30"})
    assert settings.broker.fee_bps == Settings().broker.fee_bps
    with pytest.raises(ConfigError, match="BROKER_FEE_BSP is not a setting"):
        Settings.from_env({"BROKER_FEE_BSP": "2"})


def test_the_analysts_settings_come_from_analyst_variables_and_keep_the_key_out_of_reprs():
    settings = Settings.from_env({"ANALYST_LLM": "openai:my-model", "ANALYST_LLM_BASE_URL": "http://127.0.0.1:8080/v1",
                                  "ANALYST_LLM_API_KEY": "sk-secret-value", "ANALYST_CONTEXT_K": "5",
                                  "ANALYST_HALF_LIFE_S": "3600"})
    assert settings.analyst.llm == "openai:my-model" and settings.analyst.context_k == 5
    assert settings.analyst.half_life_s == 3600.0 and settings.analyst.llm_api_key == "sk-secret-value"
    assert "sk-secret-value" not in repr(settings)
    assert Settings.from_env({}).analyst.llm == ""  # the offline scorer by default


@pytest.mark.parametrize("value", ["gpt-4", "openai:", "llamacpp", "hf:model"])
def test_a_malformed_analyst_llm_fails_start_up_with_one_line(value):
    with pytest.raises(ConfigError, match=r"^ANALYST_LLM=.*openai:<model>"):
        Settings.from_env({"ANALYST_LLM": value})


def test_the_secure_profile_connects_as_the_worker_over_sasl_ssl(tmp_path):
    import json

    secrets = tmp_path / "secure"
    secrets.mkdir()
    (secrets / "credentials.json").write_text(json.dumps({"admin": "a" * 24, "bars": "b" * 24}))
    settings = Settings.from_env({"ALGO_PROFILE": "secure", "ALGO_SECRETS_DIR": str(secrets)})
    config = settings.kafka_config()
    assert config["security.protocol"] == "SASL_SSL" and config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["sasl.username"] == "admin" and config["sasl.password"] == "a" * 24  # the operator's commands
    assert config["ssl.ca.location"] == str(secrets / "ca.pem")
    worker = dataclasses.replace(settings, worker="bars").kafka_config()
    assert (worker["sasl.username"], worker["sasl.password"]) == ("bars", "b" * 24)
    with pytest.raises(ConfigError, match="no password for principal 'broker'"):
        dataclasses.replace(settings, worker="broker").kafka_config()
    assert "security.protocol" not in Settings.from_env({}).kafka_config()


def test_the_secure_profile_without_its_material_says_how_to_make_it(tmp_path):
    settings = Settings.from_env({"ALGO_PROFILE": "secure", "ALGO_RUN_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match="algo stack up --secure"):
        settings.kafka_config()
    with pytest.raises(ConfigError, match="ALGO_PROFILE='open'"):
        Settings.from_env({"ALGO_PROFILE": "open"})
    with pytest.raises(ConfigError, match="ALGO_PRINCIPAL='root'"):
        Settings.from_env({"ALGO_PRINCIPAL": "root"})
