#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

#include "risk_core/metrics.hpp"
#include "risk_core/pretrade.hpp"

using namespace risk_core;

namespace {

PortfolioState portfolio() {
    PortfolioState p;
    p.cash = 100000.0;
    p.positions = {{"AAPL", 100.0, 150.0, 0.02}, {"MSFT", -50.0, 300.0, 0.015}};
    p.start_of_day_equity = 100000.0;
    p.peak_equity = 100000.0;
    return p;
}

Order buy(const std::string& sym, double qty, double price) {
    Order o;
    o.symbol = sym;
    o.side = 1;
    o.quantity = qty;
    o.price = price;
    o.timestamp = 10.0;
    o.volatility = 0.02;
    return o;
}

}  // namespace

TEST(PreTrade, ApproveWithinLimits) {
    RiskLimits l;
    l.max_position_notional = 50000;
    Verdict v = check_order(buy("AAPL", 10, 150), portfolio(), l);
    EXPECT_EQ(v.decision, Decision::Approve);
    EXPECT_EQ(v.quantity, 10.0);
    EXPECT_EQ(v.reasons, 0u);
    // equity = 100000 + 15000 - 15000 = 100000
    EXPECT_DOUBLE_EQ(v.equity, 100000.0);
    EXPECT_NEAR(v.gross_exposure, (110 * 150 + 15000) / 100000.0, 1e-15);
}

TEST(PreTrade, ResizeToPositionLimit) {
    RiskLimits l;
    l.max_position_notional = 30000;  // AAPL at 150: 200 units max, holds 100
    l.lot_size = 1;
    Verdict v = check_order(buy("AAPL", 500, 150), portfolio(), l);
    EXPECT_EQ(v.decision, Decision::Resize);
    EXPECT_DOUBLE_EQ(v.quantity, 100.0);
    EXPECT_EQ(v.reasons, static_cast<std::uint32_t>(ReasonPositionLimit));
    // selling through zero to a short of 200 is also the limit
    Order s = buy("AAPL", 500, 150);
    s.side = -1;
    v = check_order(s, portfolio(), l);
    EXPECT_EQ(v.decision, Decision::Resize);
    EXPECT_DOUBLE_EQ(v.quantity, 300.0);
}

TEST(PreTrade, SymbolOverrideAndNotionalCap) {
    RiskLimits l;
    l.symbol_position_notional["AAPL"] = 15000;  // already at the limit
    Verdict v = check_order(buy("AAPL", 1, 150), portfolio(), l);
    EXPECT_EQ(v.decision, Decision::Reject);
    EXPECT_EQ(v.reasons, static_cast<std::uint32_t>(ReasonPositionLimit));
    l = RiskLimits{};
    l.max_order_notional = 1500;
    v = check_order(buy("IBM", 20, 100), portfolio(), l);
    EXPECT_EQ(v.decision, Decision::Resize);
    EXPECT_DOUBLE_EQ(v.quantity, 15.0);
    EXPECT_EQ(v.reasons, static_cast<std::uint32_t>(ReasonNotionalCap));
}

TEST(PreTrade, GrossAndNetExposure) {
    RiskLimits l;
    l.max_gross_exposure = 0.5;  // 50000 gross allowed, 30000 used
    Verdict v = check_order(buy("IBM", 1000, 100), portfolio(), l);
    EXPECT_EQ(v.decision, Decision::Resize);
    EXPECT_NEAR(v.quantity, 200.0, 1e-9);
    EXPECT_TRUE(v.reasons & ReasonGrossExposure);
    l = RiskLimits{};
    l.max_net_exposure = 0.05;  // net = 15000 - 15000 = 0; 5000 allowed
    v = check_order(buy("IBM", 1000, 100), portfolio(), l);
    EXPECT_NEAR(v.quantity, 50.0, 1e-9);
    EXPECT_TRUE(v.reasons & ReasonNetExposure);
}

TEST(PreTrade, ReducingOrderPassesOverLimit) {
    RiskLimits l;
    l.max_position_notional = 1000;  // AAPL holds 15000, far over
    Order s = buy("AAPL", 10, 150);
    s.side = -1;
    Verdict v = check_order(s, portfolio(), l);
    EXPECT_EQ(v.decision, Decision::Approve);
}

TEST(PreTrade, KillSwitches) {
    PortfolioState p = portfolio();
    p.start_of_day_equity = 110000.0;  // down ~9%
    RiskLimits l;
    l.max_daily_loss = 0.05;
    Verdict v = check_order(buy("AAPL", 10, 150), p, l);
    EXPECT_EQ(v.decision, Decision::Reject);
    EXPECT_EQ(v.reasons, static_cast<std::uint32_t>(ReasonDailyLoss));
    Order s = buy("AAPL", 500, 150);
    s.side = -1;
    v = check_order(s, p, l);  // reducing is allowed, down to flat
    EXPECT_EQ(v.decision, Decision::Resize);
    EXPECT_DOUBLE_EQ(v.quantity, 100.0);
    p = portfolio();
    p.peak_equity = 200000.0;
    l = RiskLimits{};
    l.max_drawdown = 0.2;
    v = check_order(buy("AAPL", 10, 150), p, l);
    EXPECT_EQ(v.decision, Decision::Reject);
    EXPECT_EQ(v.reasons, static_cast<std::uint32_t>(ReasonDrawdown));
}

TEST(PreTrade, RateLimit) {
    PortfolioState p = portfolio();
    p.order_timestamps = {8.0, 9.5, 9.9};
    RiskLimits l;
    l.max_orders_per_window = 2;
    l.rate_window_seconds = 1.0;
    Verdict v = check_order(buy("AAPL", 1, 150), p, l);  // 9.5, 9.9 in (9, 10]
    EXPECT_EQ(v.decision, Decision::Reject);
    EXPECT_TRUE(v.reasons & ReasonRateLimit);
    l.max_orders_per_window = 3;
    EXPECT_EQ(check_order(buy("AAPL", 1, 150), p, l).decision, Decision::Approve);
}

TEST(PreTrade, VarLimit) {
    RiskLimits l;
    l.max_var = 0.02;
    l.var_confidence = 0.99;
    const double z = normal_ppf(0.99);
    // current undiversified VaR: z * (15000*0.02 + 15000*0.015) / 100000
    const double now = z * (300.0 + 225.0) / 100000.0;
    Verdict v = check_order(buy("IBM", 10000, 100), portfolio(), l);
    EXPECT_EQ(v.decision, Decision::Resize);
    const double x = (0.02 * 100000.0 / z - 525.0) / (100.0 * 0.02);
    EXPECT_NEAR(v.quantity, x, 1e-9);
    EXPECT_NEAR(v.var, 0.02, 1e-12);
    EXPECT_LT(now, 0.02);
    Order o = buy("IBM", 1, 100);
    o.volatility = -1;  // unknown
    EXPECT_THROW(check_order(o, portfolio(), l), std::invalid_argument);
}

TEST(PreTrade, InvalidOrders) {
    RiskLimits l;
    EXPECT_THROW(check_order(buy("AAPL", -1, 150), portfolio(), l), std::invalid_argument);
    EXPECT_THROW(check_order(buy("AAPL", 1, std::nan("")), portfolio(), l), std::invalid_argument);
    EXPECT_THROW(check_order(buy("", 1, 10), portfolio(), l), std::invalid_argument);
    Order o = buy("AAPL", 1, 150);
    o.side = 0;
    EXPECT_THROW(check_order(o, portfolio(), l), std::invalid_argument);
    l.max_gross_exposure = -1;
    EXPECT_THROW(check_order(buy("AAPL", 1, 150), portfolio(), l), std::invalid_argument);
}

TEST(PreTrade, EngineMatchesPureCheck) {
    RiskLimits l;
    l.max_gross_exposure = 0.4;
    l.max_position_notional = 25000;
    l.max_var = 0.03;
    l.max_orders_per_window = 5;
    RiskEngine e(l, 100000.0);
    e.set_position("AAPL", 100.0, 150.0, 0.02);
    e.set_position("MSFT", -50.0, 300.0, 0.015);
    for (int i = 0; i < 8; ++i) {
        Order o = buy(i % 2 ? "AAPL" : "IBM", 40.0 + 30 * i, 100.0 + i);
        o.timestamp = 10.0 + 0.1 * i;
        Verdict a = e.check(o);
        Verdict b = check_order(o, e.state(), l);
        EXPECT_EQ(a.decision, b.decision);
        EXPECT_EQ(a.quantity, b.quantity);
        EXPECT_EQ(a.reasons, b.reasons);
        Verdict c = e.submit(o);
        if (c.decision != Decision::Reject) e.on_fill(o.symbol, o.side * c.quantity, o.price);
    }
    // five orders within the window: the sixth is rate limited, and passes once they age out
    RiskEngine f(l, 100000.0);
    for (int i = 0; i < 5; ++i) f.record_order(20.0 + 0.1 * i);
    Order o = buy("IBM", 1, 100);
    o.timestamp = 20.75;
    EXPECT_EQ(f.check(o).decision, Decision::Reject);
    EXPECT_TRUE(f.check(o).reasons & ReasonRateLimit);
    o.timestamp = 21.45;  // 20.0 .. 20.4 are older than 1 s
    EXPECT_EQ(f.check(o).decision, Decision::Approve);
}
