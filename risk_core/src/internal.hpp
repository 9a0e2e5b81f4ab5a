// Internal helpers shared by the sources (not installed, not part of the API).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "risk_core/backtest.hpp"

// AVX2 kernels (src/simd.cpp) need GCC or Clang on x86-64; elsewhere the scalar code runs.
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(RISK_CORE_NO_SIMD)
#define RISK_CORE_HAVE_AVX2_KERNELS 1
#else
#define RISK_CORE_HAVE_AVX2_KERNELS 0
#endif

namespace risk_core {
namespace detail {

constexpr std::size_t kSmaBlock = 1024;  // SMA window sums restart from a direct sum every block

// Running return, risk and drawdown statistics of an equity curve.
// Bar returns r_t = e_t / e_{t-1} - 1 with e_{-1} = the initial capital (r_t = 0 when
// e_{t-1} <= 0). Sums use four interleaved accumulators (lane = bar index mod 4 once aligned).
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

    // one bar
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

    // add() over e[0..k), with identical results: single bars until count is a multiple of 4,
    // then groups of four (the AVX2 kernel when enabled, else block4), then single bars.
    void add_block(const double* e, std::size_t k);

    // the scalar group path: k (a multiple of 4) bars, count a multiple of 4. Returns in one
    // pass (the division-bound part, pipelined), drawdown in another.
    void block4(const double* e, std::size_t k);

    // drawdown over k (a multiple of 4) values: peak, trough since the peak, max drawdown, and
    // the longest run of bars below the peak. The common path (no new peak among four values)
    // is a lane-wise minimum.
    void drawdown_block(const double* e, std::size_t k);

    void finish(Stats& s) const;
};

// ---- AVX2 kernels (src/simd.cpp) ----------------------------------------------------------------
// Used when simd_enabled() (the CPU has AVX2, detected once). They perform the same IEEE
// operations in the same order per value as the scalar code, so results are bit-identical.

bool simd_enabled();
// Tests and benchmarks: false forces the scalar code; true restores the CPU's choice.
void set_simd_enabled(bool on);
// SmaSignal's signs (+1/0/-1) of the four blocks of the chunk at bar a (4 * kSmaBlock bars,
// a >= slow - 1) into sig[0 .. 4 * kSmaBlock), with the direction filter applied (Direction:
// 1 long-only keeps max(s, 0), 2 short-only min(s, 0), 0 both).
void sma_chunk_avx2(const double* close, std::size_t a, std::size_t fast, std::size_t slow, int direction,
                    signed char* sig);
// ReturnStats::block4: returns and drawdown of e[0..k) (k a multiple of 4, rs.count too).
void return_block_avx2(ReturnStats& rs, const double* e, std::size_t k);
// A run of bars [start, next segment's start) of a chunk holding q units: equity cash + q * close.
struct Segment {
    std::size_t start;
    double cash, q;
};
// Columns of the next chunk to prefetch while a chunk is processed (memory and compute overlap).
struct Prefetch {
    const double* column[6] = {};
    int count = 0;
    std::size_t bars = 0;  // bars of each column
};
// The chunk's equity e[t] = cash + q * c[t] from its segments (seg[0].start == 0, increasing;
// the last runs to k), written to eq and pos when they are not null, and fed to rs as add_block
// would (rs.count must be a multiple of 4). Prefetches the `next` columns, k bars of each.
// stream: write eq and pos with non-temporal stores (both 32-byte aligned; for outputs larger
// than the caches).
void equity_chunk_avx2(ReturnStats& rs, const double* c, std::size_t k, const Segment* seg, std::size_t m, double* eq,
                       double* pos, const Prefetch& next, bool stream);
// Input checks over [0, n): every p[i] finite and > 0; every hi[i] >= lo[i]; every p[i] finite
// and >= 0.
bool all_positive_finite_avx2(const double* p, std::size_t n);
bool all_ge_avx2(const double* hi, const double* lo, std::size_t n);
bool all_nonnegative_finite_avx2(const double* p, std::size_t n);

// run_backtest without validation (the sweep validates once, up front).
Stats run_validated(const BarsView& bars, const double* target, const BacktestConfig& cfg,
                    const BacktestOutput& out);

}  // namespace detail
}  // namespace risk_core
