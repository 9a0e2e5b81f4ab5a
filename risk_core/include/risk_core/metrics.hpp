// Risk metrics: historical and parametric (Gaussian) VaR / CVaR, rolling volatility, drawdown.
// Returns are simple per-period returns; VaR and CVaR are reported as positive loss fractions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace risk_core {

// Inverse of the standard normal CDF (Wichura's AS241, about 1e-16 relative accuracy).
// Throws std::invalid_argument unless 0 < p < 1.
double normal_ppf(double p);

// -quantile(returns, 1 - confidence), the quantile interpolated linearly between order
// statistics (numpy's default "linear" method).
double historical_var(const double* returns, std::size_t n, double confidence);

// -mean of the returns at or below that quantile (expected shortfall).
double historical_cvar(const double* returns, std::size_t n, double confidence);

// Gaussian: -(mean + stdev * z), z = normal_ppf(1 - confidence), stdev with ddof 1.
double parametric_var(const double* returns, std::size_t n, double confidence);

// Gaussian expected shortfall: -(mean - stdev * pdf(z) / (1 - confidence)).
double parametric_cvar(const double* returns, std::size_t n, double confidence);

// Rolling stdev (ddof 1) of `window` returns ending at each index, times sqrt(periods_per_year)
// when annualize; the first window-1 entries are NaN. `out` holds n elements.
void rolling_volatility(const double* returns, std::size_t n, std::size_t window,
                        double periods_per_year, bool annualize, double* out);

struct DrawdownSummary {
    double max_drawdown = 0.0;               // a positive fraction
    std::int64_t max_duration = 0;           // bars from a peak until recovered (or the end)
    std::int64_t peak_index = 0;             // peak before the largest drawdown
    std::int64_t trough_index = 0;           // bottom of the largest drawdown
};

// out[t] = 1 - equity[t] / max(equity[0..t]) (0 at new highs). Equity must be positive.
DrawdownSummary drawdown(const double* equity, std::size_t n, double* out);

}  // namespace risk_core
