// Pre-trade checks. Mirrored by risk_core/reference.py (check_order); change both together.
#include "risk_core/pretrade.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "risk_core/metrics.hpp"

namespace risk_core {

namespace {

[[noreturn]] void fail(const std::string& msg) { throw std::invalid_argument("pre-trade check: " + msg); }

void require(bool ok, const std::string& msg) {
    if (!ok) fail(msg);
}

bool nonneg(double v) { return v >= 0.0; }  // false for NaN; +inf allowed (limit off)

void validate_position(const Position& p) {
    require(!p.symbol.empty(), "a position has an empty symbol");
    require(std::isfinite(p.quantity), "position " + p.symbol + ": quantity must be finite");
    require(p.price > 0.0 && std::isfinite(p.price), "position " + p.symbol + ": price must be finite and > 0, got " +
                                                         std::to_string(p.price));
    require(p.volatility >= 0.0 && std::isfinite(p.volatility),
            "position " + p.symbol + ": volatility must be finite and >= 0, got " + std::to_string(p.volatility));
}

void validate_order(const Order& o) {
    require(!o.symbol.empty(), "the order has an empty symbol");
    require(o.side == 1 || o.side == -1, "order side must be +1 (buy) or -1 (sell), got " + std::to_string(o.side));
    require(o.quantity > 0.0 && std::isfinite(o.quantity),
            "order quantity must be finite and > 0, got " + std::to_string(o.quantity));
    require(o.price > 0.0 && std::isfinite(o.price), "order price must be finite and > 0, got " + std::to_string(o.price));
    require(std::isfinite(o.timestamp), "order timestamp must be finite");
    require(std::isfinite(o.volatility), "order volatility must be finite (negative: use the position's)");
}

// Largest x >= 0 with k*|u + x| + c <= max(limit, k*|u| + c): a limit never blocks an order
// that does not make its figure worse.
double bound(double u, double k, double c, double limit) {
    if (!(k > 0.0)) return kInf;
    const double now = k * std::fabs(u) + c;
    const double cap = std::max(limit, now);
    const double x = (cap - c) / k - u;
    return x > 0.0 ? x : 0.0;
}

struct Inputs {
    Aggregates agg;
    double own_qty = 0.0, own_price = 0.0, own_vol = -1.0;
    bool has_own = false;
    double start_of_day_equity = 0.0, peak_equity = 0.0;
    std::int64_t recent_orders = 0;
};

Verdict evaluate(const Order& o, const Inputs& in, const RiskLimits& lim) {
    validate_order(o);
    const double p = o.price;
    const double s = static_cast<double>(o.side);
    const double q0 = in.has_own ? in.own_qty : 0.0;
    const double p0 = in.has_own ? in.own_price : p;
    double vol = o.volatility >= 0.0 ? o.volatility : (in.has_own ? in.own_vol : -1.0);
    if (vol < 0.0) {
        require(std::isinf(lim.max_var),
                "the VaR limit needs a volatility for " + o.symbol + " (pass it with the order or the position)");
        vol = 0.0;
    }
    const double E = in.agg.equity;
    const double own_notional = std::fabs(q0 * p0);
    const double gross_o = std::max(0.0, in.agg.gross - own_notional);
    const double net_o = in.agg.net - q0 * p0;
    const double risk_o = std::max(0.0, in.agg.risk - own_notional * (in.has_own ? in.own_vol : 0.0));
    const double z = normal_ppf(lim.var_confidence);
    const double v = s * q0;  // current position measured in the order's direction
    const double X = o.quantity;

    std::uint32_t reasons = 0;
    double best = X;
    auto apply = [&](double b, Reason r) {
        if (b < X) reasons |= r;
        if (b < best) best = b;
    };

    // hard stops: rate limit and kill switches
    bool blocked = false;
    if (in.recent_orders + 1 > lim.max_orders_per_window) {
        reasons |= ReasonRateLimit;
        blocked = true;
    }
    const double reduce_only = v < 0.0 ? -v : 0.0;  // what flattens the position, no more
    if (in.start_of_day_equity > 0.0 && !std::isinf(lim.max_daily_loss) &&
        (in.start_of_day_equity - E) / in.start_of_day_equity >= lim.max_daily_loss) {
        apply(reduce_only, ReasonDailyLoss);
    }
    if (in.peak_equity > 0.0 && !std::isinf(lim.max_drawdown) && (in.peak_equity - E) / in.peak_equity >= lim.max_drawdown) {
        apply(reduce_only, ReasonDrawdown);
    }

    // sizable limits
    double pos_limit = lim.max_position_notional;
    const auto it = lim.symbol_position_notional.find(o.symbol);
    if (it != lim.symbol_position_notional.end()) pos_limit = it->second;
    if (!std::isinf(pos_limit)) apply(bound(v, p, 0.0, pos_limit), ReasonPositionLimit);
    if (!std::isinf(lim.max_order_notional)) apply(lim.max_order_notional / p, ReasonNotionalCap);
    if (!std::isinf(lim.max_gross_exposure)) apply(bound(v, p, gross_o, lim.max_gross_exposure * E), ReasonGrossExposure);
    if (!std::isinf(lim.max_net_exposure)) apply(bound(v + s * net_o / p, p, 0.0, lim.max_net_exposure * E), ReasonNetExposure);
    if (!std::isinf(lim.max_var)) apply(bound(v, z * p * vol, z * risk_o, lim.max_var * E), ReasonVarLimit);

    Verdict out;
    out.equity = E;
    double x = blocked ? 0.0 : best;
    if (x < X) {
        if (lim.lot_size > 0.0) {
            const double lots = std::floor(x / lim.lot_size) * lim.lot_size;
            if (lots <= 0.0 && x > 0.0) reasons |= ReasonBelowLot;
            x = lots;
        }
        out.decision = x > 0.0 ? Decision::Resize : Decision::Reject;
        if (x <= 0.0) x = 0.0;
    } else {
        x = X;
        out.decision = Decision::Approve;
        reasons = 0;
    }
    out.quantity = x;
    out.reasons = reasons;
    const double after = std::fabs(v + x) * p;
    if (E > 0.0) {
        out.gross_exposure = (gross_o + after) / E;
        out.net_exposure = (net_o + s * (v + x) * p) / E;
        out.var = z * (risk_o + after * vol) / E;
    } else {
        out.gross_exposure = out.net_exposure = out.var = std::numeric_limits<double>::quiet_NaN();
    }
    return out;
}

}  // namespace

void validate_limits(const RiskLimits& l) {
    require(nonneg(l.max_position_notional), "max_position_notional must be >= 0");
    for (const auto& kv : l.symbol_position_notional) {
        require(nonneg(kv.second), "the position limit of " + kv.first + " must be >= 0");
    }
    require(nonneg(l.max_gross_exposure), "max_gross_exposure must be >= 0");
    require(nonneg(l.max_net_exposure), "max_net_exposure must be >= 0");
    require(nonneg(l.max_order_notional), "max_order_notional must be >= 0");
    require(l.max_orders_per_window >= 0, "max_orders_per_window must be >= 0");
    require(l.rate_window_seconds > 0.0 && std::isfinite(l.rate_window_seconds), "rate_window_seconds must be finite and > 0");
    require(nonneg(l.max_daily_loss), "max_daily_loss must be >= 0");
    require(nonneg(l.max_drawdown), "max_drawdown must be >= 0");
    require(nonneg(l.max_var), "max_var must be >= 0");
    require(l.var_confidence >= 0.5 && l.var_confidence < 1.0, "var_confidence must be in [0.5, 1)");
    require(l.lot_size >= 0.0 && std::isfinite(l.lot_size), "lot_size must be finite and >= 0");
}

Aggregates aggregate(const std::vector<Position>& positions, double cash) {
    Aggregates a;
    a.equity = cash;
    for (const Position& p : positions) {
        const double n = p.quantity * p.price;
        a.equity += n;
        a.gross += std::fabs(n);
        a.net += n;
        a.risk += std::fabs(n) * p.volatility;
    }
    return a;
}

Verdict check_order(const Order& order, const PortfolioState& pf, const RiskLimits& limits) {
    validate_limits(limits);
    require(std::isfinite(pf.cash), "cash must be finite");
    require(std::isfinite(pf.start_of_day_equity) && std::isfinite(pf.peak_equity),
            "start_of_day_equity and peak_equity must be finite");
    Inputs in;
    for (const Position& p : pf.positions) {
        validate_position(p);
        if (p.symbol == order.symbol) {
            require(!in.has_own, "the portfolio holds " + p.symbol + " twice");
            in.has_own = true;
            in.own_qty = p.quantity;
            in.own_price = p.price;
            in.own_vol = p.volatility;
        }
    }
    in.agg = aggregate(pf.positions, pf.cash);
    in.start_of_day_equity = pf.start_of_day_equity;
    in.peak_equity = pf.peak_equity;
    require(std::isfinite(order.timestamp), "order timestamp must be finite");
    const double from = order.timestamp - limits.rate_window_seconds;
    for (std::size_t i = 0; i < pf.order_timestamps.size(); ++i) {
        require(std::isfinite(pf.order_timestamps[i]), "order timestamps must be finite");
        if (pf.order_timestamps[i] > from) ++in.recent_orders;
    }
    return evaluate(order, in, limits);
}

// ---- RiskEngine -----------------------------------------------------------------------------

RiskEngine::RiskEngine(const RiskLimits& limits, double cash) : limits_(limits), cash_(cash) {
    validate_limits(limits_);
    require(std::isfinite(cash), "cash must be finite");
    refresh();
    start_of_day_equity_ = agg_.equity;
    peak_equity_ = agg_.equity;
}

void RiskEngine::refresh() {
    agg_ = aggregate(positions_, cash_);
    if (agg_.equity > peak_equity_) peak_equity_ = agg_.equity;
}

void RiskEngine::set_position(const std::string& symbol, double quantity, double price, double volatility) {
    Position p{symbol, quantity, price, volatility < 0.0 ? 0.0 : volatility};
    validate_position(p);
    const auto it = index_.find(symbol);
    if (it == index_.end()) {
        if (quantity == 0.0) return;
        index_.emplace(symbol, positions_.size());
        positions_.push_back(p);
    } else if (quantity == 0.0) {
        const std::size_t i = it->second;
        positions_.erase(positions_.begin() + static_cast<std::ptrdiff_t>(i));
        index_.erase(it);
        for (auto& kv : index_) if (kv.second > i) --kv.second;
    } else {
        Position& cur = positions_[it->second];
        cur.quantity = quantity;
        cur.price = price;
        if (volatility >= 0.0) cur.volatility = volatility;
    }
    refresh();
}

void RiskEngine::mark(const std::string& symbol, double price, double volatility) {
    const auto it = index_.find(symbol);
    if (it == index_.end()) return;
    Position p = positions_[it->second];
    p.price = price;
    if (volatility >= 0.0) p.volatility = volatility;
    validate_position(p);
    positions_[it->second] = p;
    refresh();
}

void RiskEngine::on_fill(const std::string& symbol, double signed_quantity, double price, double fee) {
    require(std::isfinite(signed_quantity), "fill quantity must be finite");
    require(price > 0.0 && std::isfinite(price), "fill price must be finite and > 0");
    require(fee >= 0.0 && std::isfinite(fee), "fill fee must be finite and >= 0");
    const auto it = index_.find(symbol);
    const double q0 = it == index_.end() ? 0.0 : positions_[it->second].quantity;
    const double vol = it == index_.end() ? 0.0 : positions_[it->second].volatility;
    cash_ = cash_ - signed_quantity * price - fee;
    set_position(symbol, q0 + signed_quantity, price, vol);
    refresh();
}

void RiskEngine::set_cash(double cash) {
    require(std::isfinite(cash), "cash must be finite");
    cash_ = cash;
    refresh();
}

void RiskEngine::start_day() { start_of_day_equity_ = agg_.equity; }

void RiskEngine::set_peak_equity(double peak) {
    require(std::isfinite(peak), "peak equity must be finite");
    peak_equity_ = peak;
}

void RiskEngine::record_order(double timestamp) {
    require(std::isfinite(timestamp), "order timestamp must be finite");
    auto pos = std::upper_bound(timestamps_.begin(), timestamps_.end(), timestamp);
    timestamps_.insert(pos, timestamp);
    // forget what no later window can see
    const double horizon = timestamps_.back() - limits_.rate_window_seconds;
    while (!timestamps_.empty() && timestamps_.front() <= horizon) timestamps_.pop_front();
}

Verdict RiskEngine::check(const Order& order) const {
    Inputs in;
    in.agg = agg_;
    const auto it = index_.find(order.symbol);
    if (it != index_.end()) {
        const Position& p = positions_[it->second];
        in.has_own = true;
        in.own_qty = p.quantity;
        in.own_price = p.price;
        in.own_vol = p.volatility;
    }
    in.start_of_day_equity = start_of_day_equity_;
    in.peak_equity = peak_equity_;
    require(std::isfinite(order.timestamp), "order timestamp must be finite");
    const double from = order.timestamp - limits_.rate_window_seconds;
    for (auto r = timestamps_.rbegin(); r != timestamps_.rend() && *r > from; ++r) ++in.recent_orders;
    return evaluate(order, in, limits_);
}

Verdict RiskEngine::submit(const Order& order) {
    Verdict v = check(order);
    if (v.decision != Decision::Reject) record_order(order.timestamp);
    return v;
}

PortfolioState RiskEngine::state() const {
    PortfolioState s;
    s.cash = cash_;
    s.positions = positions_;
    s.start_of_day_equity = start_of_day_equity_;
    s.peak_equity = peak_equity_;
    s.order_timestamps.assign(timestamps_.begin(), timestamps_.end());
    return s;
}

}  // namespace risk_core
