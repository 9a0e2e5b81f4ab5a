// Pre-trade checks of a proposed order against a portfolio and a set of limits.
//
// Verdict: Approve (the whole order passes), Resize (the largest quantity that passes every
// limit, smaller than asked), or Reject; `reasons` is a bitmask of Reason codes naming the
// limits that bound or blocked the order. A limit an order does not make worse never blocks it
// (an order that only shrinks an over-limit exposure passes that limit). Limits at +inf are off.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <string>
#include <unordered_map>
#include <vector>

namespace risk_core {

enum class Decision : int { Approve = 0, Resize = 1, Reject = 2 };

enum Reason : std::uint32_t {
    ReasonNone = 0,
    ReasonPositionLimit = 1u << 0,   // |position after| * price > the symbol's notional limit
    ReasonGrossExposure = 1u << 1,   // sum |notional| / equity > max_gross_exposure
    ReasonNetExposure = 1u << 2,     // |sum notional| / equity > max_net_exposure
    ReasonNotionalCap = 1u << 3,     // order quantity * price > max_order_notional
    ReasonRateLimit = 1u << 4,       // too many orders in the rate window
    ReasonDailyLoss = 1u << 5,       // kill switch: loss since start of day >= max_daily_loss
    ReasonDrawdown = 1u << 6,        // kill switch: drawdown from peak >= max_drawdown
    ReasonVarLimit = 1u << 7,        // undiversified parametric VaR / equity > max_var
    ReasonBelowLot = 1u << 8,        // what would pass rounds down to zero lots
    ReasonNoEquity = 1u << 9,        // equity <= 0: exposure limits cannot be met
};

constexpr double kInf = std::numeric_limits<double>::infinity();

struct RiskLimits {
    double max_position_notional = kInf;  // per symbol, unless overridden below
    std::unordered_map<std::string, double> symbol_position_notional;
    double max_gross_exposure = kInf;     // multiple of equity
    double max_net_exposure = kInf;       // multiple of equity
    double max_order_notional = kInf;
    std::int64_t max_orders_per_window = std::numeric_limits<std::int64_t>::max();
    double rate_window_seconds = 1.0;
    double max_daily_loss = kInf;         // fraction of start-of-day equity
    double max_drawdown = kInf;           // fraction of peak equity
    double max_var = kInf;                // fraction of equity
    double var_confidence = 0.99;
    double lot_size = 0.0;                // resized quantities round down to lots (0: no rounding)
};

struct Position {
    std::string symbol;
    double quantity = 0.0;    // signed units
    double price = 0.0;       // mark price
    double volatility = 0.0;  // stdev of the symbol's per-period returns (for the VaR limit)
};

struct PortfolioState {
    double cash = 0.0;
    std::vector<Position> positions;
    double start_of_day_equity = 0.0;  // <= 0: daily-loss switch off
    double peak_equity = 0.0;          // <= 0: drawdown switch off
    std::vector<double> order_timestamps;  // seconds, of orders already sent
};

struct Order {
    std::string symbol;
    int side = 1;              // +1 buy, -1 sell
    double quantity = 0.0;     // > 0
    double price = 0.0;        // > 0, also the mark for the symbol after the order
    double timestamp = 0.0;    // seconds
    double volatility = -1.0;  // < 0: take the position's volatility
};

struct Verdict {
    Decision decision = Decision::Reject;
    double quantity = 0.0;        // approved quantity (0 when rejected)
    std::uint32_t reasons = 0;
    double equity = 0.0;
    double gross_exposure = 0.0;  // after the approved quantity, multiples of equity
    double net_exposure = 0.0;
    double var = 0.0;             // after the approved quantity, fraction of equity
};

// Sums over the positions that the checks need; `exclude` (or null) leaves one symbol out.
struct Aggregates {
    double equity = 0.0;
    double gross = 0.0;      // sum |q p|
    double net = 0.0;        // sum q p
    double risk = 0.0;       // sum |q p| * vol
};

Aggregates aggregate(const std::vector<Position>& positions, double cash);

// The pure check. Throws std::invalid_argument on an invalid order, limits or portfolio.
Verdict check_order(const Order& order, const PortfolioState& portfolio, const RiskLimits& limits);

void validate_limits(const RiskLimits& limits);

// A stateful engine for the hot path: positions, aggregates and the order-rate window are kept
// between calls, so a check is O(1) in the number of positions.
class RiskEngine {
public:
    RiskEngine(const RiskLimits& limits, double cash);

    // Replaces the position of a symbol (quantity 0 removes it).
    void set_position(const std::string& symbol, double quantity, double price, double volatility);
    // Updates a mark price (and volatility when >= 0).
    void mark(const std::string& symbol, double price, double volatility = -1.0);
    // Applies a fill: signed quantity at price, fee taken from cash.
    void on_fill(const std::string& symbol, double signed_quantity, double price, double fee = 0.0);
    void set_cash(double cash);
    // Starts a new day: start-of-day equity = current equity.
    void start_day();
    void set_peak_equity(double peak);
    void record_order(double timestamp);

    Verdict check(const Order& order) const;
    // check() and, unless rejected, record_order(order.timestamp).
    Verdict submit(const Order& order);

    PortfolioState state() const;
    double equity() const { return agg_.equity; }
    const RiskLimits& limits() const { return limits_; }

private:
    void refresh();

    RiskLimits limits_;
    double cash_;
    std::vector<Position> positions_;
    std::unordered_map<std::string, std::size_t> index_;
    Aggregates agg_;
    double start_of_day_equity_ = 0.0;
    double peak_equity_ = 0.0;
    std::deque<double> timestamps_;
};

}  // namespace risk_core
