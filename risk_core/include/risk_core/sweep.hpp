// Parameter sweep: a grid of strategy parameters over one or many symbols, spread over threads.
#pragma once

#include <cstddef>
#include <vector>

#include "risk_core/backtest.hpp"

namespace risk_core {

// One grid point. For SmaCross p1 = fast, p2 = slow; for Momentum and Breakout p1 = lookback
// and p2 is ignored.
struct SweepParam {
    int p1 = 0;
    int p2 = 0;
};

struct SweepRow {
    std::size_t symbol = 0;  // index into the bars passed in
    std::size_t param = 0;   // index into the params passed in
    Stats stats;
};

// Runs every (symbol, param) pair with `base` for everything else and returns the rows in
// symbol-major order (row = symbol * params.size() + param). threads == 0 uses every hardware
// thread. Each backtest is identical to run_backtest on the same inputs. Strategy::Target is
// not sweepable. Throws std::invalid_argument on invalid input (checked before any thread
// starts).
std::vector<SweepRow> run_sweep(const std::vector<BarsView>& symbols,
                                const std::vector<SweepParam>& params,
                                const BacktestConfig& base, unsigned threads = 0);

}  // namespace risk_core
