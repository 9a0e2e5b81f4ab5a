// The backtester: one symbol's OHLCV bars, a target-position series or a built-in strategy,
// fees, slippage, position sizing; returns the equity curve, positions, trades and stats.
//
// Execution model (no look-ahead): the signal of bar t uses data up to and including bar t's
// close; the resulting order executes at bar t+1's open. A signal on the last bar is never
// executed. See risk_core/README.md for the exact formulas.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "risk_core/bars.hpp"

namespace risk_core {

enum class Strategy : int {
    Target = 0,    // caller-provided target series (signed fraction of equity, before sizing)
    SmaCross = 1,  // long when SMA(fast) > SMA(slow), short (or flat) when below
    Momentum = 2,  // sign(close[t] - close[t - lookback])
    Breakout = 3,  // Donchian: close above the prior `lookback`-bar high / below the prior low
};

enum class Direction : int { LongShort = 0, LongOnly = 1, ShortOnly = 2 };

enum class Sizing : int {
    FixedFraction = 0,  // weight = signal * fraction
    VolTarget = 1,      // weight = signal * min(max_leverage, target_vol / realised_vol)
};

struct BacktestConfig {
    Strategy strategy = Strategy::SmaCross;
    int fast = 10;       // SmaCross: fast window (bars)
    int slow = 50;       // SmaCross: slow window (bars), > fast
    int lookback = 20;   // Momentum / Breakout window (bars)
    Direction direction = Direction::LongOnly;
    Sizing sizing = Sizing::FixedFraction;
    double fraction = 1.0;        // FixedFraction: fraction of equity per unit of signal
    double target_vol = 0.10;     // VolTarget: annualised volatility target
    int vol_window = 20;          // VolTarget: returns in the realised-volatility window (>= 2)
    double max_leverage = 1.0;    // VolTarget: cap on |weight| per unit of signal
    double fee_bps = 0.0;         // fee on traded notional, basis points
    double slippage_bps = 0.0;    // fill price = open * (1 +/- slippage)
    double initial_capital = 100000.0;
    double lot_size = 0.0;        // 0: fractional units; > 0: units rounded toward zero to lots
    double periods_per_year = 252.0;
};

// One round trip: from flat (or a reversal) to flat (or the next reversal). A trade still open
// on the last bar is marked at the last close and has closed == 0.
struct Trade {
    std::int64_t entry_bar = 0;
    std::int64_t exit_bar = 0;
    std::int64_t direction = 0;  // +1 long, -1 short
    std::int64_t closed = 0;     // 1 when closed, 0 when marked to market at the end
    double quantity = 0.0;       // units entered (sum of the increases)
    double entry_price = 0.0;    // average fill price of the increases
    double exit_price = 0.0;     // average price of the decreases (and the final mark)
    double pnl = 0.0;            // net of the fees charged to this trade
    double return_pct = 0.0;     // pnl / entry notional
    double fees = 0.0;
};

struct Stats {
    double final_equity = 0.0;
    double total_return = 0.0;
    double annualized_return = 0.0;
    double volatility = 0.0;        // annualised stdev of bar returns (ddof 1)
    double sharpe = 0.0;            // mean / stdev * sqrt(periods_per_year), risk-free 0
    double sortino = 0.0;           // mean / downside deviation * sqrt(periods_per_year)
    double max_drawdown = 0.0;      // largest peak-to-trough loss, a fraction (0.25 = -25%)
    std::int64_t max_drawdown_duration = 0;  // longest stretch (bars) below a prior peak
    double turnover = 0.0;          // traded notional / initial capital
    double hit_rate = 0.0;          // winning closed trades / closed trades
    std::int64_t num_trades = 0;    // round trips, the open one included
    std::int64_t num_fills = 0;
    double total_fees = 0.0;
    double exposure = 0.0;          // fraction of bars ending with a non-zero position
};

// Output buffers supplied by the caller (e.g. numpy arrays): `equity` and `positions` must hold
// bars.size elements each, or be null to skip recording them.
struct BacktestOutput {
    double* equity = nullptr;
    double* positions = nullptr;
    std::vector<Trade>* trades = nullptr;  // null: trades are not recorded (stats still are)
};

// Runs one backtest. `target` (bars.size elements) is read only when
// config.strategy == Strategy::Target. Throws std::invalid_argument on invalid input.
Stats run_backtest(const BarsView& bars, const double* target, const BacktestConfig& config,
                   const BacktestOutput& out);

struct BacktestResult {
    std::vector<double> equity;
    std::vector<double> positions;
    std::vector<Trade> trades;
    Stats stats;
};

// Owning convenience wrapper around run_backtest.
BacktestResult backtest(const Bars& bars, const BacktestConfig& config,
                        const std::vector<double>* target = nullptr);

// Stats of an equity curve alone (no trade statistics): returns, risk and drawdown figures.
Stats equity_stats(const double* equity, std::size_t n, double initial_capital,
                   double periods_per_year);

// Throws std::invalid_argument when a field of the config is out of range.
void validate_config(const BacktestConfig& config);

// The hot loops (SMA signals, equity/returns/drawdown, input checks) have AVX2 versions that run
// when the CPU has AVX2 (detected once at load; the build itself needs no -march flag). They give
// bit-identical results to the portable scalar code. simd_path() names the code in use:
// "avx2" or "scalar"; set_simd(false) forces the scalar code (tests, benchmarks), set_simd(true)
// restores the CPU's choice. Not thread-safe with running backtests.
const char* simd_path();
void set_simd(bool enabled);

}  // namespace risk_core
