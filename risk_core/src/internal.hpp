// Internal helpers shared by the sources (not installed, not part of the API).
#pragma once

#include <algorithm>
#include <cstdint>

#include "risk_core/backtest.hpp"

namespace risk_core {
namespace detail {

// Running return, risk and drawdown statistics of an equity curve, one bar at a time.
// Bar returns r_t = e_t / e_{t-1} - 1 with e_{-1} = the initial capital (r_t = 0 when
// e_{t-1} <= 0). Sums use four interleaved accumulators (lane = t mod 4).
struct ReturnStats {
    double capital, periods_per_year;
    double prev, last;
    double s1[4] = {0, 0, 0, 0}, s2[4] = {0, 0, 0, 0}, d2[4] = {0, 0, 0, 0};
    std::int64_t count = 0;
    double peak, trough, max_dd = 0.0;
    std::int64_t run = 0, max_run = 0;

    ReturnStats(double initial_capital, double ppy)
        : capital(initial_capital), periods_per_year(ppy), prev(initial_capital), last(initial_capital),
          peak(initial_capital), trough(initial_capital) {}

    inline void add(double eq) {
        const double r = prev > 0.0 ? eq / prev - 1.0 : 0.0;
        const int lane = static_cast<int>(count & 3);
        s1[lane] += r;
        s2[lane] += r * r;
        const double dn = r < 0.0 ? r : 0.0;
        d2[lane] += dn * dn;
        ++count;
        prev = eq;
        last = eq;
        if (eq >= peak) {
            if (trough < peak) max_dd = std::max(max_dd, 1.0 - trough / peak);
            peak = eq;
            trough = eq;
            run = 0;
        } else {
            trough = std::min(trough, eq);
            ++run;
            max_run = std::max(max_run, run);
        }
    }

    // add() of `k` more bars whose equity equals the last one (their returns are exactly 0, so
    // the sums are unchanged): the same result as k calls of add(eq).
    inline void add_constant(double eq, std::size_t k) {
        if (k == 0) return;
        count += static_cast<std::int64_t>(k);
        prev = last = eq;
        if (eq >= peak) {
            if (trough < peak) max_dd = std::max(max_dd, 1.0 - trough / peak);
            peak = eq;
            trough = eq;
            run = 0;
        } else {
            trough = std::min(trough, eq);
            run += static_cast<std::int64_t>(k);
            max_run = std::max(max_run, run);
        }
    }

    // add() over a block, with identical results: returns in one pass (the division bound part,
    // pipelined), drawdown in another whose common path (no new peak) is a lane-wise minimum.
    inline void add_block(const double* e, std::size_t k) {
        std::size_t i = 0;
        for (; i < k && (count & 3) != 0; ++i) add(e[i]);
        const std::size_t start = i;
        const std::size_t end = start + ((k - start) & ~static_cast<std::size_t>(3));
        if (end > start) {
            double a1[4] = {s1[0], s1[1], s1[2], s1[3]};
            double a2[4] = {s2[0], s2[1], s2[2], s2[3]};
            double a3[4] = {d2[0], d2[1], d2[2], d2[3]};
            for (std::size_t j = start; j < end; j += 4) {
                for (int l = 0; l < 4; ++l) {
                    const double pv = j + l == start ? prev : e[j + l - 1];
                    const double r = pv > 0.0 ? e[j + l] / pv - 1.0 : 0.0;
                    a1[l] += r;
                    a2[l] += r * r;
                    const double dn = r < 0.0 ? r : 0.0;
                    a3[l] += dn * dn;
                }
            }
            for (int l = 0; l < 4; ++l) {
                s1[l] = a1[l];
                s2[l] = a2[l];
                d2[l] = a3[l];
            }
            drawdown_block(e + start, end - start);
            count += static_cast<std::int64_t>(end - start);
            prev = last = e[end - 1];
        }
        for (i = end; i < k; ++i) add(e[i]);
    }

    // drawdown over k (a multiple of 4) values: peak, trough since the peak, max drawdown, and
    // the longest run of bars below the peak
    inline void drawdown_block(const double* e, std::size_t k) {
        double pk = peak, tr = trough, mdd = max_dd;
        std::int64_t rn = run, mr = max_run;
        double l0 = tr, l1 = tr, l2 = tr, l3 = tr;
        std::size_t since = 0;  // values below the peak since the last slow step, not yet in rn
        for (std::size_t j = 0; j < k; j += 4) {
            const double x0 = e[j], x1 = e[j + 1], x2 = e[j + 2], x3 = e[j + 3];
            const double hi = std::max(std::max(x0, x1), std::max(x2, x3));
            if (hi >= pk) {
                tr = std::min(std::min(std::min(tr, l0), std::min(l1, l2)), l3);
                rn += static_cast<std::int64_t>(since);
                mr = std::max(mr, rn);
                since = 0;
                for (int l = 0; l < 4; ++l) {
                    const double x = e[j + l];
                    if (x >= pk) {
                        if (tr < pk) mdd = std::max(mdd, 1.0 - tr / pk);
                        pk = x;
                        tr = x;
                        rn = 0;
                    } else {
                        tr = std::min(tr, x);
                        ++rn;
                        mr = std::max(mr, rn);
                    }
                }
                l0 = l1 = l2 = l3 = tr;
            } else {
                l0 = std::min(l0, x0);
                l1 = std::min(l1, x1);
                l2 = std::min(l2, x2);
                l3 = std::min(l3, x3);
                since += 4;
            }
        }
        tr = std::min(std::min(std::min(tr, l0), std::min(l1, l2)), l3);
        rn += static_cast<std::int64_t>(since);
        mr = std::max(mr, rn);
        peak = pk;
        trough = tr;
        max_dd = mdd;
        run = rn;
        max_run = mr;
    }

    void finish(Stats& s) const;
};

// run_backtest without validation (the sweep validates once, up front).
Stats run_validated(const BarsView& bars, const double* target, const BacktestConfig& cfg,
                    const BacktestOutput& out);

}  // namespace detail
}  // namespace risk_core
