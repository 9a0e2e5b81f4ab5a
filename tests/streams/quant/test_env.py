"""The Quant env: gymnasium's checker, risk_core parity of its accounting, rewards, episodes."""
from __future__ import annotations

import math

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import risk_core as rc
from streams.errors import ModelError
from streams.quant.env import EnvConfig, MarketSeries, PaperAccount, QuantTradingEnv
from streams.quant.features import FeatureSpec
from tests import fixtures

SPEC = FeatureSpec()


def series(n=400, seed=0, symbol="SYN"):
    frame = fixtures.ohlcv(n, seed)
    return MarketSeries.build(symbol, frame["open"], frame["close"], SPEC)


def run_actions(env, actions, start, length):
    obs, info = env.reset(options={"series": 0, "start": start, "length": length})
    equity, rewards, observations = [info["equity"]], [], [obs]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(int(action))
        equity.append(info["equity"])
        rewards.append(reward)
        observations.append(obs)
        if terminated or truncated:
            break
    return np.array(equity), np.array(rewards), observations, truncated


def test_gymnasium_env_checker_passes():
    check_env(QuantTradingEnv([series()], SPEC), skip_render_check=True)


@pytest.mark.parametrize("fee_bps, slippage_bps, seed", [(0.0, 0.0, 1), (1.0, 1.0, 2), (10.0, 5.0, 3), (25.0, 0.0, 4)])
def test_equity_matches_risk_cores_backtester_on_the_same_actions(fee_bps, slippage_bps, seed):
    config = EnvConfig(fee_bps=fee_bps, slippage_bps=slippage_bps)
    s = series(500, seed)
    env = QuantTradingEnv([s], SPEC, config)
    start = s.first_decision_bar()
    rng = np.random.default_rng(seed)
    actions = rng.choice(3, size=len(s) - start - 1, p=[0.3, 0.3, 0.4])
    actions[10:40] = 2  # long stretches as well as flips
    equity, _, _, truncated = run_actions(env, actions, start, len(s))
    assert truncated and len(equity) == len(s) - start
    targets = np.append(np.array(config.positions)[actions], 0.0)  # the last bar's signal is never executed
    result = rc.backtest(s.open[start:], s.close[start:], target=targets, **config.backtest_params())
    np.testing.assert_allclose(equity, result.equity, rtol=1e-12, atol=0)
    assert result.stats.num_fills == env.unwrapped._account.fills > 10
    assert env.unwrapped._account.fees == pytest.approx(result.stats.total_fees, rel=1e-12)


def test_long_only_configuration_and_fraction_match_too():
    config = EnvConfig(positions=(0.0, 1.0), fraction=0.5, fee_bps=3.0, slippage_bps=2.0)
    s = series(300, 9)
    env = QuantTradingEnv([s], SPEC, config)
    start = s.first_decision_bar()
    actions = np.random.default_rng(9).integers(0, 2, len(s) - start - 1)
    equity, *_ = run_actions(env, actions, start, len(s))
    targets = np.append(np.array(config.positions)[actions] * 0.5, 0.0)
    result = rc.backtest(s.open[start:], s.close[start:], target=targets, **config.backtest_params())
    np.testing.assert_allclose(equity, result.equity, rtol=1e-12)


def test_reward_is_log_growth_minus_the_variance_and_trading_penalties():
    config = EnvConfig(risk_penalty=2.0, reward_scale=10.0, trade_penalty_bps=7.0)
    s = series()
    env = QuantTradingEnv([s], SPEC, config)
    actions = [2, 2, 0, 0, 1, 2, 2, 2]
    equity, rewards, *_ = run_actions(env, actions, s.first_decision_bar(), 50)
    r = equity[1:] / equity[:-1] - 1
    changes = np.abs(np.diff(np.array([0.0] + [config.positions[a] for a in actions])))
    assert changes.tolist() == [1, 0, 2, 0, 1, 1, 0, 0]
    np.testing.assert_allclose(rewards, 10.0 * (np.log1p(r) - 2.0 * r * r - 7e-4 * changes), rtol=1e-12)
    assert rewards[1] != 0 and r[1] != 0  # holding long earns (or loses) the market move


def test_staying_flat_earns_nothing_and_costs_nothing():
    s = series()
    env = QuantTradingEnv([s], SPEC, EnvConfig(fee_bps=50))
    equity, rewards, *_ = run_actions(env, [1] * 30, s.first_decision_bar(), 30)
    assert (equity == EnvConfig().initial_capital).all() and (rewards == 0).all()


def test_the_observation_carries_the_position_the_policy_took():
    s = series()
    env = QuantTradingEnv([s], SPEC)
    _, _, observations, _ = run_actions(env, [2, 0, 1], s.first_decision_bar(), 10)
    assert [float(o[-1]) for o in observations] == [0.0, 1.0, -1.0, 0.0]


def test_random_episodes_stay_inside_the_data_and_end_after_episode_length():
    a, b = series(400, 1, "A"), series(700, 2, "B")
    env = QuantTradingEnv([a, b], SPEC, EnvConfig(episode_length=100))
    env.reset(seed=42)
    symbols = set()
    for _ in range(30):
        _, info = env.reset()
        symbols.add(info["symbol"])
        length = len(a) if info["symbol"] == "A" else len(b)
        assert SPEC.warmup - 1 <= info["bar"] <= length - 101
        steps, done = 0, False
        while not done:
            _, _, terminated, truncated, step_info = env.step(env.action_space.sample())
            steps += 1
            done = terminated or truncated
        assert steps == 100 and step_info["bar"] == info["bar"] + 100
    assert symbols == {"A", "B"}


def test_reset_with_a_seed_is_deterministic():
    env = QuantTradingEnv([series(400, 1), series(600, 2)], SPEC)
    first = env.reset(seed=7)
    second = env.reset(seed=7)
    np.testing.assert_array_equal(first[0], second[0])
    assert first[1] == second[1]


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ModelError, match="enough bars"):
        QuantTradingEnv([series(50)], SPEC)
    env = QuantTradingEnv([series()], SPEC)
    env.reset(seed=0)
    with pytest.raises(ModelError, match="not in Discrete"):
        env.step(5)
    with pytest.raises(ModelError, match="outside"):
        env.reset(options={"start": 2})
    with pytest.raises(ModelError, match="finite"):
        MarketSeries.build("X", [1.0, math.nan], [1.0, 2.0], SPEC)


def test_paper_account_sells_at_the_bid_side_and_charges_the_fee():
    account = PaperAccount(cash=1000.0, fee_bps=10.0, slippage_bps=100.0)
    account.rebalance(1.0, 10.0)
    assert account.units == pytest.approx(1000.0 / (10.1 * 1.001))
    account.rebalance(0.0, 10.0)
    assert account.units == 0.0 and account.fills == 2
    assert account.cash < 1000.0 and account.fees == pytest.approx(account.traded * 1e-3)
