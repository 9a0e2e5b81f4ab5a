#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "risk_core/metrics.hpp"

using namespace risk_core;

TEST(Metrics, NormalPpf) {
    EXPECT_NEAR(normal_ppf(0.5), 0.0, 1e-16);
    EXPECT_NEAR(normal_ppf(0.975), 1.959963984540054, 1e-14);
    EXPECT_NEAR(normal_ppf(0.01), -2.3263478740408408, 1e-14);
    EXPECT_NEAR(normal_ppf(1e-10), -6.361340902404056, 1e-12);
    EXPECT_THROW(normal_ppf(0.0), std::invalid_argument);
    EXPECT_THROW(normal_ppf(1.0), std::invalid_argument);
}

TEST(Metrics, HistoricalVarAndCvar) {
    std::vector<double> r;
    for (int i = 1; i <= 100; ++i) r.push_back((i - 50) / 1000.0);  // -0.049 .. 0.050
    // quantile at 0.05 over 100 points: h = 99 * 0.05 = 4.95 -> between -0.045 and -0.044
    const double q = -0.045 + 0.95 * 0.001;
    EXPECT_NEAR(historical_var(r.data(), r.size(), 0.95), -q, 1e-15);
    // tail: the 5 returns <= q: -0.049 .. -0.045
    EXPECT_NEAR(historical_cvar(r.data(), r.size(), 0.95), 0.047, 1e-15);
}

TEST(Metrics, ParametricVar) {
    std::vector<double> r = {0.01, -0.02, 0.015, -0.005, 0.0, 0.02, -0.01};
    double mean = 0;
    for (double x : r) mean += x;
    mean /= r.size();
    double ss = 0;
    for (double x : r) ss += (x - mean) * (x - mean);
    const double sd = std::sqrt(ss / (r.size() - 1));
    const double z = -1.6448536269514722;
    EXPECT_NEAR(parametric_var(r.data(), r.size(), 0.95), -(mean + sd * z), 1e-14);
    const double pdf = std::exp(-0.5 * z * z) / std::sqrt(2 * M_PI);
    EXPECT_NEAR(parametric_cvar(r.data(), r.size(), 0.95), -(mean - sd * pdf / 0.05), 1e-14);
    EXPECT_GT(parametric_cvar(r.data(), r.size(), 0.95), parametric_var(r.data(), r.size(), 0.95));
}

TEST(Metrics, RollingVolatility) {
    std::vector<double> r = {0.01, -0.01, 0.02, 0.0, 0.03};
    std::vector<double> out(r.size());
    rolling_volatility(r.data(), r.size(), 3, 252.0, false, out.data());
    EXPECT_TRUE(std::isnan(out[0]));
    EXPECT_TRUE(std::isnan(out[1]));
    EXPECT_NEAR(out[2], 0.015275252316519466, 1e-15);
    rolling_volatility(r.data(), r.size(), 3, 252.0, true, out.data());
    EXPECT_NEAR(out[2], 0.015275252316519466 * std::sqrt(252.0), 1e-13);
    EXPECT_THROW(rolling_volatility(r.data(), r.size(), 1, 252.0, true, out.data()), std::invalid_argument);
}

TEST(Metrics, Drawdown) {
    std::vector<double> eq = {100, 120, 90, 100, 130, 117};
    std::vector<double> dd(eq.size());
    DrawdownSummary s = drawdown(eq.data(), eq.size(), dd.data());
    EXPECT_NEAR(dd[2], 0.25, 1e-15);
    EXPECT_NEAR(s.max_drawdown, 0.25, 1e-15);
    EXPECT_EQ(s.peak_index, 1);
    EXPECT_EQ(s.trough_index, 2);
    EXPECT_EQ(s.max_duration, 2);
    EXPECT_NEAR(dd[5], 0.1, 1e-15);
    eq[3] = std::nan("");
    EXPECT_THROW(drawdown(eq.data(), eq.size(), dd.data()), std::invalid_argument);
}

TEST(Metrics, InvalidInput) {
    std::vector<double> r = {0.01, std::nan("")};
    EXPECT_THROW(historical_var(r.data(), r.size(), 0.95), std::invalid_argument);
    EXPECT_THROW(historical_var(r.data(), 0, 0.95), std::invalid_argument);
    r[1] = 0.0;
    EXPECT_THROW(parametric_var(r.data(), r.size(), 1.5), std::invalid_argument);
}
