#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "risk_core/risk_core.hpp"

using namespace risk_core;

namespace {

Bars make_bars(const std::vector<double>& close) {
    Bars b;
    b.close = close;
    b.open = close;
    b.high = close;
    b.low = close;
    b.volume.assign(close.size(), 1000.0);
    return b;
}

Bars random_bars(std::size_t n, unsigned seed) {
    std::mt19937_64 g(seed);
    std::normal_distribution<double> nd(0.0, 0.01);
    Bars b;
    double p = 100.0;
    for (std::size_t i = 0; i < n; ++i) {
        const double o = p * std::exp(nd(g) * 0.3);
        p = p * std::exp(nd(g));
        b.open.push_back(o);
        b.close.push_back(p);
        b.high.push_back(std::max(o, p) * 1.002);
        b.low.push_back(std::min(o, p) * 0.998);
        b.volume.push_back(1e6);
    }
    return b;
}

BacktestConfig target_config() {
    BacktestConfig c;
    c.strategy = Strategy::Target;
    c.direction = Direction::LongShort;
    c.initial_capital = 1000.0;
    return c;
}

}  // namespace

TEST(Backtest, TargetSeriesExecutesAtNextOpen) {
    Bars b = make_bars({10, 10, 11, 12, 12});
    b.open = {10, 10, 10, 12, 13};
    std::vector<double> target = {0, 1, 1, 0, 0};  // long decided at bar 1's close
    BacktestResult r = backtest(b, target_config(), &target);
    // buys at bar 2's open (10): 100 units; sells at bar 4's open (13)
    EXPECT_DOUBLE_EQ(r.positions[1], 0.0);
    EXPECT_DOUBLE_EQ(r.positions[2], 100.0);
    EXPECT_DOUBLE_EQ(r.positions[3], 100.0);
    EXPECT_DOUBLE_EQ(r.positions[4], 0.0);
    EXPECT_DOUBLE_EQ(r.equity[2], 1100.0);
    EXPECT_DOUBLE_EQ(r.equity[4], 1300.0);
    ASSERT_EQ(r.trades.size(), 1u);
    EXPECT_EQ(r.trades[0].entry_bar, 2);
    EXPECT_EQ(r.trades[0].exit_bar, 4);
    EXPECT_EQ(r.trades[0].closed, 1);
    EXPECT_DOUBLE_EQ(r.trades[0].pnl, 300.0);
    EXPECT_DOUBLE_EQ(r.stats.total_return, 0.3);
    EXPECT_EQ(r.stats.num_trades, 1);
    EXPECT_DOUBLE_EQ(r.stats.hit_rate, 1.0);
}

TEST(Backtest, FeesAndSlippage) {
    Bars b = make_bars({100, 100, 100});
    std::vector<double> target = {1, 1, 1};
    BacktestConfig c = target_config();
    c.fee_bps = 10;       // 0.1%
    c.slippage_bps = 50;  // 0.5%
    BacktestResult r = backtest(b, c, &target);
    const double fill = 100.0 * 1.005;
    const double units = 1000.0 / (fill * 1.001);
    EXPECT_NEAR(r.positions[1], units, 1e-12);
    EXPECT_NEAR(r.stats.total_fees, units * fill * 0.001, 1e-12);
    EXPECT_NEAR(r.equity[1], 1000.0 - units * fill - units * fill * 0.001 + units * 100.0, 1e-9);
    EXPECT_EQ(r.stats.num_fills, 1);
    EXPECT_EQ(r.trades.size(), 1u);
    EXPECT_EQ(r.trades[0].closed, 0);
}

TEST(Backtest, ShortAndReversal) {
    Bars b = make_bars({10, 10, 8, 8, 10, 10});
    std::vector<double> target = {-1, -1, 1, 1, 1, 1};
    BacktestResult r = backtest(b, target_config(), &target);
    // short 100 @10 at bar 1, reverse at bar 3's open (8): +200
    EXPECT_DOUBLE_EQ(r.positions[1], -100.0);
    EXPECT_DOUBLE_EQ(r.equity[2], 1200.0);
    EXPECT_DOUBLE_EQ(r.positions[3], 150.0);
    ASSERT_EQ(r.trades.size(), 2u);
    EXPECT_EQ(r.trades[0].direction, -1);
    EXPECT_DOUBLE_EQ(r.trades[0].pnl, 200.0);
    EXPECT_EQ(r.trades[1].direction, 1);
    EXPECT_DOUBLE_EQ(r.trades[1].pnl, 300.0);
    EXPECT_DOUBLE_EQ(r.stats.final_equity, 1500.0);
}

TEST(Backtest, LongOnlyClipsShorts) {
    Bars b = make_bars({10, 10, 8, 8});
    std::vector<double> target = {-1, -1, -1, -1};
    BacktestConfig c = target_config();
    c.direction = Direction::LongOnly;
    BacktestResult r = backtest(b, c, &target);
    EXPECT_EQ(r.stats.num_fills, 0);
    EXPECT_DOUBLE_EQ(r.stats.final_equity, 1000.0);
}

TEST(Backtest, LotSizeRoundsTowardZero) {
    Bars b = make_bars({30, 30, 30});
    std::vector<double> target = {1, 1, 1};
    BacktestConfig c = target_config();
    c.lot_size = 1.0;
    BacktestResult r = backtest(b, c, &target);
    EXPECT_DOUBLE_EQ(r.positions[1], 33.0);
}

TEST(Backtest, NoLookAhead) {
    Bars b = random_bars(400, 7);
    BacktestConfig c;
    c.fast = 5;
    c.slow = 20;
    c.fee_bps = 5;
    c.direction = Direction::LongShort;
    BacktestResult full = backtest(b, c);
    // changing the future (bars after k) must not change anything up to bar k
    const std::size_t k = 250;
    Bars changed = b;
    for (std::size_t i = k + 1; i < changed.close.size(); ++i) {
        changed.close[i] *= 1.5;
        changed.open[i] *= 0.7;
        changed.high[i] = std::max(changed.open[i], changed.close[i]);
        changed.low[i] = std::min(changed.open[i], changed.close[i]);
    }
    BacktestResult alt = backtest(changed, c);
    for (std::size_t i = 0; i <= k; ++i) {
        EXPECT_EQ(full.equity[i], alt.equity[i]) << i;
        EXPECT_EQ(full.positions[i], alt.positions[i]) << i;
    }
}

TEST(Backtest, SmaCrossMatchesTargetOfItsSignal) {
    Bars b = random_bars(500, 11);
    BacktestConfig c;
    c.fast = 3;
    c.slow = 12;
    c.direction = Direction::LongShort;
    c.fee_bps = 3;
    BacktestResult sma = backtest(b, c);
    // rebuild the signal by hand
    std::vector<double> target(b.close.size(), 0.0);
    for (std::size_t t = 11; t < b.close.size(); ++t) {
        double f = 0, s = 0;
        for (std::size_t i = t - 2; i <= t; ++i) f += b.close[i];
        for (std::size_t i = t - 11; i <= t; ++i) s += b.close[i];
        const double diff = f / 3 - s / 12;
        if (std::fabs(diff) > 1e-9) target[t] = diff > 0 ? 1 : -1;
        else target[t] = sma.positions[t + 1 < b.close.size() ? t + 1 : t] > 0 ? 1 : -1;
    }
    BacktestConfig tc = c;
    tc.strategy = Strategy::Target;
    BacktestResult tgt = backtest(b, tc, &target);
    EXPECT_NEAR(sma.stats.final_equity, tgt.stats.final_equity, 1e-9 * sma.stats.final_equity);
    EXPECT_EQ(sma.trades.size(), tgt.trades.size());
}

TEST(Backtest, MomentumAndBreakoutRun) {
    Bars b = random_bars(600, 3);
    BacktestConfig c;
    c.strategy = Strategy::Momentum;
    c.lookback = 10;
    BacktestResult m = backtest(b, c);
    EXPECT_GT(m.stats.num_trades, 0);
    c.strategy = Strategy::Breakout;
    c.direction = Direction::LongShort;
    BacktestResult br = backtest(b, c);
    EXPECT_GT(br.stats.num_trades, 0);
    for (double q : br.positions) EXPECT_TRUE(std::isfinite(q));
}

TEST(Backtest, VolTargetSizing) {
    Bars b = random_bars(300, 5);
    std::vector<double> target(300, 1.0);
    BacktestConfig c = target_config();
    c.sizing = Sizing::VolTarget;
    c.vol_window = 20;
    c.target_vol = 0.05;
    c.max_leverage = 2.0;
    BacktestResult r = backtest(b, c, &target);
    // signal is held back until vol_window bars exist, sized at bar 20, filled at bar 21
    EXPECT_DOUBLE_EQ(r.positions[20], 0.0);
    ASSERT_NE(r.positions[21], 0.0);
    double sum = 0;
    for (int i = 1; i <= 20; ++i) sum += b.close[i] / b.close[i - 1] - 1.0;
    const double mean = sum / 20;
    double ss = 0;
    for (int i = 1; i <= 20; ++i) ss += std::pow(b.close[i] / b.close[i - 1] - 1.0 - mean, 2);
    const double vol = std::sqrt(ss / 19) * std::sqrt(252.0);
    const double w = std::min(2.0, 0.05 / vol);
    EXPECT_NEAR(r.positions[21], w * 1000.0 / b.open[21], 1e-9);
}

TEST(Backtest, StatsDefinitions) {
    const std::vector<double> eq = {100, 110, 99, 121, 120};
    Stats s = equity_stats(eq.data(), eq.size(), 100.0, 252.0);
    EXPECT_DOUBLE_EQ(s.total_return, 0.2);
    EXPECT_NEAR(s.max_drawdown, 0.1, 1e-15);
    EXPECT_EQ(s.max_drawdown_duration, 1);
    std::vector<double> r = {0.0, 0.1, 99.0 / 110 - 1, 121.0 / 99 - 1, 120.0 / 121 - 1};
    double mean = 0;
    for (double x : r) mean += x;
    mean /= 5;
    double ss = 0, dn = 0;
    for (double x : r) {
        ss += (x - mean) * (x - mean);
        if (x < 0) dn += x * x;
    }
    const double sd = std::sqrt(ss / 4);
    EXPECT_NEAR(s.volatility, sd * std::sqrt(252.0), 1e-12);
    EXPECT_NEAR(s.sharpe, mean / sd * std::sqrt(252.0), 1e-12);
    EXPECT_NEAR(s.sortino, mean / std::sqrt(dn / 5) * std::sqrt(252.0), 1e-12);
    EXPECT_NEAR(s.annualized_return, std::pow(1.2, 252.0 / 5) - 1, 1e-6);
}

TEST(Backtest, InvalidInputThrows) {
    Bars b = make_bars({10, 11, 12});
    BacktestConfig c;
    c.fast = 1;
    c.slow = 2;
    b.close[1] = std::nan("");
    EXPECT_THROW(backtest(b, c), std::invalid_argument);
    b = make_bars({10, 11, 12});
    b.open.pop_back();
    EXPECT_THROW(backtest(b, c), std::invalid_argument);
    b = make_bars({});
    EXPECT_THROW(backtest(b, c), std::invalid_argument);
    b = make_bars({10, 11, 12});
    b.volume[0] = -1;
    EXPECT_THROW(backtest(b, c), std::invalid_argument);
    b = make_bars({10, 11, 12});
    c.fee_bps = -1;
    EXPECT_THROW(backtest(b, c), std::invalid_argument);
    c = BacktestConfig{};
    c.fast = 5;
    c.slow = 5;
    EXPECT_THROW(backtest(b, c), std::invalid_argument);
    c = BacktestConfig{};
    c.fraction = -0.5;
    EXPECT_THROW(backtest(b, c), std::invalid_argument);
    c = target_config();
    EXPECT_THROW(backtest(b, c), std::invalid_argument);  // no target series
    std::vector<double> t = {0, 1, std::nan("")};
    EXPECT_THROW(backtest(b, c, &t), std::invalid_argument);
    try {
        b.close[2] = -3;
        backtest(b, BacktestConfig{});
        FAIL();
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("close"), std::string::npos);
        EXPECT_NE(std::string(e.what()).find("bar 2"), std::string::npos);
    }
}

TEST(Sweep, MatchesSingleRunsOnAnyThreadCount) {
    std::vector<Bars> data = {random_bars(800, 1), random_bars(600, 2)};
    std::vector<BarsView> views = {data[0].view(), data[1].view()};
    std::vector<SweepParam> params;
    for (int f = 2; f <= 10; f += 4)
        for (int s = 15; s <= 45; s += 15) params.push_back({f, s});
    BacktestConfig base;
    base.fee_bps = 2;
    base.direction = Direction::LongShort;
    auto one = run_sweep(views, params, base, 1);
    auto two = run_sweep(views, params, base, 2);
    auto many = run_sweep(views, params, base, 0);
    ASSERT_EQ(one.size(), data.size() * params.size());
    for (std::size_t i = 0; i < one.size(); ++i) {
        BacktestConfig c = base;
        c.fast = params[one[i].param].p1;
        c.slow = params[one[i].param].p2;
        BacktestResult r = backtest(data[one[i].symbol], c);
        EXPECT_EQ(one[i].symbol, i / params.size());
        EXPECT_EQ(one[i].stats.final_equity, r.stats.final_equity);
        EXPECT_EQ(one[i].stats.sharpe, r.stats.sharpe);
        EXPECT_EQ(one[i].stats.num_trades, r.stats.num_trades);
        EXPECT_EQ(two[i].stats.final_equity, r.stats.final_equity);
        EXPECT_EQ(many[i].stats.max_drawdown, r.stats.max_drawdown);
    }
}

TEST(Sweep, RejectsBadParameters) {
    Bars b = random_bars(100, 1);
    std::vector<BarsView> views = {b.view()};
    BacktestConfig base;
    EXPECT_THROW(run_sweep(views, {{10, 5}}, base), std::invalid_argument);
    EXPECT_THROW(run_sweep(views, {}, base), std::invalid_argument);
    EXPECT_THROW(run_sweep({}, {{2, 5}}, base), std::invalid_argument);
    base.strategy = Strategy::Target;
    EXPECT_THROW(run_sweep(views, {{2, 5}}, base), std::invalid_argument);
}

namespace {

// Bit-for-bit equality of two results (NaN-free): the AVX2 kernels must reproduce the scalar code.
void expect_identical(const BacktestResult& a, const BacktestResult& b, const std::string& what) {
    ASSERT_EQ(a.equity.size(), b.equity.size()) << what;
    for (std::size_t i = 0; i < a.equity.size(); ++i) {
        ASSERT_EQ(a.equity[i], b.equity[i]) << what << " bar " << i;
        ASSERT_EQ(a.positions[i], b.positions[i]) << what << " bar " << i;
    }
    ASSERT_EQ(a.trades.size(), b.trades.size()) << what;
    for (std::size_t i = 0; i < a.trades.size(); ++i) {
        EXPECT_EQ(a.trades[i].entry_bar, b.trades[i].entry_bar) << what;
        EXPECT_EQ(a.trades[i].exit_bar, b.trades[i].exit_bar) << what;
        EXPECT_EQ(a.trades[i].pnl, b.trades[i].pnl) << what;
    }
    const Stats& x = a.stats;
    const Stats& y = b.stats;
    EXPECT_EQ(x.final_equity, y.final_equity) << what;
    EXPECT_EQ(x.annualized_return, y.annualized_return) << what;
    EXPECT_EQ(x.volatility, y.volatility) << what;
    EXPECT_EQ(x.sharpe, y.sharpe) << what;
    EXPECT_EQ(x.sortino, y.sortino) << what;
    EXPECT_EQ(x.max_drawdown, y.max_drawdown) << what;
    EXPECT_EQ(x.max_drawdown_duration, y.max_drawdown_duration) << what;
    EXPECT_EQ(x.turnover, y.turnover) << what;
    EXPECT_EQ(x.num_trades, y.num_trades) << what;
    EXPECT_EQ(x.num_fills, y.num_fills) << what;
    EXPECT_EQ(x.exposure, y.exposure) << what;
}

struct ScalarScope {  // forces the scalar code for its lifetime
    ScalarScope() { set_simd(false); }
    ~ScalarScope() { set_simd(true); }
};

}  // namespace

TEST(Simd, KernelsMatchScalarCodeBitForBit) {
    if (std::string(simd_path()) != "avx2") GTEST_SKIP() << "no AVX2 on this machine: only the scalar code runs";
    // several chunks of 4096 bars plus a ragged end; windows below, at and above the SMA block
    const Bars b = random_bars(3 * 4096 + 1237, 17);
    std::vector<BacktestConfig> configs;
    for (auto fs : {std::pair<int, int>{1, 2}, {3, 17}, {10, 50}, {20, 1024}, {7, 1500}, {50, 5000}}) {
        for (Direction d : {Direction::LongOnly, Direction::ShortOnly, Direction::LongShort}) {
            BacktestConfig c;
            c.fast = fs.first;
            c.slow = fs.second;
            c.direction = d;
            c.fee_bps = 2.5;
            c.slippage_bps = 1.0;
            configs.push_back(c);
        }
    }
    BacktestConfig momentum;
    momentum.strategy = Strategy::Momentum;
    momentum.lookback = 5;
    momentum.direction = Direction::LongShort;
    configs.push_back(momentum);
    BacktestConfig breakout = momentum;
    breakout.strategy = Strategy::Breakout;
    breakout.sizing = Sizing::VolTarget;
    configs.push_back(breakout);
    BacktestConfig lots = configs[4];
    lots.lot_size = 1.0;
    configs.push_back(lots);
    for (const BacktestConfig& c : configs) {
        const std::string what = "strategy " + std::to_string(static_cast<int>(c.strategy)) + " fast " +
                                 std::to_string(c.fast) + " slow " + std::to_string(c.slow) + " direction " +
                                 std::to_string(static_cast<int>(c.direction));
        const BacktestResult fast = backtest(b, c);
        BacktestResult slow;
        {
            ScalarScope scalar;
            slow = backtest(b, c);
        }
        expect_identical(fast, slow, what);
        // stats alone (no outputs recorded) are the same too
        const Stats only = run_backtest(b.view(), nullptr, c, BacktestOutput{});
        EXPECT_EQ(only.sharpe, fast.stats.sharpe) << what;
        EXPECT_EQ(only.max_drawdown, fast.stats.max_drawdown) << what;
    }
}

TEST(Simd, LeveragedTargetThroughNegativeEquityMatchesScalar) {
    // 3x short into a rally: equity goes below zero (returns are 0 after a non-positive equity)
    Bars b = random_bars(9000, 23);
    for (std::size_t i = 4000; i < b.close.size(); ++i) {
        const double up = 1.0 + 0.002 * static_cast<double>(i - 4000);
        b.close[i] *= up;
        b.open[i] *= up;
        b.high[i] *= up;
        b.low[i] *= up;
    }
    std::vector<double> target(b.close.size(), -3.0);
    for (std::size_t i = 0; i < target.size(); i += 977) target[i] = 0.0;  // flat now and then
    BacktestConfig c = target_config();
    const BacktestResult fast = backtest(b, c, &target);
    EXPECT_LT(fast.stats.final_equity, 0.0);
    BacktestResult slow;
    {
        ScalarScope scalar;
        slow = backtest(b, c, &target);
    }
    expect_identical(fast, slow, "target -3");
    std::vector<double> eq = fast.equity;
    const Stats s1 = equity_stats(eq.data(), eq.size(), 1000.0, 252.0);
    ScalarScope scalar;
    const Stats s2 = equity_stats(eq.data(), eq.size(), 1000.0, 252.0);
    EXPECT_EQ(s1.sharpe, s2.sharpe);
    EXPECT_EQ(s1.sortino, s2.sortino);
    EXPECT_EQ(s1.max_drawdown, s2.max_drawdown);
    EXPECT_EQ(s1.max_drawdown_duration, s2.max_drawdown_duration);
}

TEST(Simd, InvalidInputFoundOnBothPaths) {
    Bars b = random_bars(10000, 5);
    b.volume[9001] = -1.0;
    EXPECT_THROW(backtest(b, BacktestConfig{}), std::invalid_argument);
    b.volume[9001] = 1.0;
    b.low[8000] = b.high[8000] * 1.01;
    try {
        backtest(b, BacktestConfig{});
        FAIL();
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("bar 8000"), std::string::npos) << e.what();
    }
    b.low[8000] = b.high[8000];
    b.open[4100] = std::numeric_limits<double>::infinity();
    EXPECT_THROW(backtest(b, BacktestConfig{}), std::invalid_argument);
    ScalarScope scalar;
    EXPECT_THROW(backtest(b, BacktestConfig{}), std::invalid_argument);
}

TEST(Simd, OrdersAtChunkBoundariesMatchScalar) {
    // the engine works in chunks of 4096 bars: orders decided on a chunk's last bar fill on the
    // next chunk's first bar, flat and long stretches on both sides of the boundary
    const Bars b = random_bars(3 * 4096 + 5, 29);
    std::vector<double> target(b.close.size(), 0.0);
    for (std::size_t i = 1000; i < 4095; ++i) target[i] = 1.0;    // exit fills at bar 4096
    for (std::size_t i = 8191; i < 9000; ++i) target[i] = 0.5;    // entry fills at bar 8192
    for (std::size_t i = 12000; i < 12287; ++i) target[i] = -1.0;  // exit fills at the last bar
    BacktestConfig c = target_config();
    c.fee_bps = 5.0;
    const BacktestResult fast = backtest(b, c, &target);
    ASSERT_EQ(fast.trades.size(), 3u);
    EXPECT_EQ(fast.trades[0].exit_bar, 4096);
    EXPECT_EQ(fast.trades[1].entry_bar, 8192);
    BacktestResult slow;
    {
        ScalarScope scalar;
        slow = backtest(b, c, &target);
    }
    expect_identical(fast, slow, "chunk boundaries");
}

TEST(Simd, StreamedOutputsMatchScalar) {
    // outputs of >= 2^17 bars, 32-byte aligned, are written with non-temporal stores
    const Bars b = random_bars((std::size_t{1} << 17) + 4100, 31);
    const std::size_t n = b.close.size();
    struct Free {
        void operator()(double* p) const { std::free(p); }
    };
    auto buffer = [n] { return std::unique_ptr<double, Free>(static_cast<double*>(std::aligned_alloc(64, (n * 8 + 127) / 64 * 64))); };
    auto eq = buffer(), pos = buffer();
    std::vector<Trade> trades;
    BacktestConfig c;
    c.fast = 9;
    c.slow = 77;
    c.fee_bps = 2.0;
    c.direction = Direction::LongShort;
    const Stats streamed = run_backtest(b.view(), nullptr, c, BacktestOutput{eq.get(), pos.get(), &trades});
    BacktestResult slow;
    {
        ScalarScope scalar;
        slow = backtest(b, c);
    }
    EXPECT_EQ(streamed.sharpe, slow.stats.sharpe);
    EXPECT_EQ(streamed.max_drawdown, slow.stats.max_drawdown);
    EXPECT_EQ(streamed.final_equity, slow.stats.final_equity);
    ASSERT_EQ(trades.size(), slow.trades.size());
    for (std::size_t i = 0; i < n; ++i) {
        ASSERT_EQ(eq.get()[i], slow.equity[i]) << i;
        ASSERT_EQ(pos.get()[i], slow.positions[i]) << i;
    }
}
