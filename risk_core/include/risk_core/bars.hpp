// OHLCV input as non-owning views, and input validation shared by every entry point.
// Pure C++17; no Python headers.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace risk_core {

// A non-owning view of one symbol's bars. `high`, `low` and `volume` may be null: high/low then
// default to close (only the breakout strategy reads them) and volume is not checked.
struct BarsView {
    const double* open = nullptr;
    const double* high = nullptr;
    const double* low = nullptr;
    const double* close = nullptr;
    const double* volume = nullptr;
    std::size_t size = 0;
};

// Owning bars, handy in C++ code and tests; view() borrows them.
struct Bars {
    std::vector<double> open, high, low, close, volume;
    BarsView view() const;
};

// Throws std::invalid_argument (with the field name and bar index) when the bars are empty,
// a price is NaN/inf or not positive, volume is negative or not finite, or high < low.
void validate_bars(const BarsView& bars);

// validate_bars on bars [a, a + k) only (the backtester checks chunk by chunk).
void validate_range(const BarsView& bars, std::size_t a, std::size_t k);

// Throws std::invalid_argument when `what` is not finite (NaN/inf); `index` names the element.
void require_finite(double value, const char* what, std::size_t index);

// require_finite over values[a, a + n) (vectorised; the index is found only on failure).
void require_all_finite(const double* values, std::size_t a, std::size_t n, const char* what);

}  // namespace risk_core
