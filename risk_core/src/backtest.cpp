// The backtester. The arithmetic here is mirrored operation by operation in
// risk_core/reference.py (the oracle), so that signals, sizes and lot rounding agree exactly;
// change both together.
#include "risk_core/backtest.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "internal.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace risk_core {

void validate_config(const BacktestConfig& c) {
    auto fail = [](const std::string& msg) { throw std::invalid_argument("backtest config: " + msg); };
    const int strategy = static_cast<int>(c.strategy);
    if (strategy < 0 || strategy > 3) fail("unknown strategy " + std::to_string(strategy));
    const int direction = static_cast<int>(c.direction);
    if (direction < 0 || direction > 2) fail("unknown direction " + std::to_string(direction));
    const int sizing = static_cast<int>(c.sizing);
    if (sizing < 0 || sizing > 1) fail("unknown sizing " + std::to_string(sizing));
    if (c.strategy == Strategy::SmaCross) {
        if (c.fast < 1) fail("fast must be >= 1, got " + std::to_string(c.fast));
        if (c.slow <= c.fast) {
            fail("slow must be > fast, got fast=" + std::to_string(c.fast) + " slow=" + std::to_string(c.slow));
        }
    }
    if ((c.strategy == Strategy::Momentum || c.strategy == Strategy::Breakout) && c.lookback < 1) {
        fail("lookback must be >= 1, got " + std::to_string(c.lookback));
    }
    auto finite_nonneg = [&](double v, const char* name) {
        if (!(v >= 0.0) || !std::isfinite(v)) fail(std::string(name) + " must be finite and >= 0, got " + std::to_string(v));
    };
    auto finite_pos = [&](double v, const char* name) {
        if (!(v > 0.0) || !std::isfinite(v)) fail(std::string(name) + " must be finite and > 0, got " + std::to_string(v));
    };
    finite_nonneg(c.fee_bps, "fee_bps");
    finite_nonneg(c.slippage_bps, "slippage_bps");
    if (c.slippage_bps >= 10000.0) fail("slippage_bps must be < 10000, got " + std::to_string(c.slippage_bps));
    finite_pos(c.initial_capital, "initial_capital");
    finite_nonneg(c.lot_size, "lot_size");
    finite_pos(c.periods_per_year, "periods_per_year");
    if (c.sizing == Sizing::FixedFraction) {
        finite_pos(c.fraction, "fraction");
    } else {
        finite_pos(c.target_vol, "target_vol");
        finite_pos(c.max_leverage, "max_leverage");
        if (c.vol_window < 2) fail("vol_window must be >= 2, got " + std::to_string(c.vol_window));
    }
}

namespace detail {

void ReturnStats::add_block(const double* e, std::size_t k) {
    std::size_t i = 0;
    for (; i < k && (count & 3) != 0; ++i) add(e[i]);
    const std::size_t groups = (k - i) & ~static_cast<std::size_t>(3);
    if (groups > 0) {
        if (simd_enabled()) {
            return_block_avx2(*this, e + i, groups);
        } else {
            block4(e + i, groups);
        }
        i += groups;
    }
    for (; i < k; ++i) add(e[i]);
}

void ReturnStats::block4(const double* e, std::size_t k) {
    double a1[4] = {s1[0], s1[1], s1[2], s1[3]};
    double a2[4] = {s2[0], s2[1], s2[2], s2[3]};
    double a3[4] = {d2[0], d2[1], d2[2], d2[3]};
    for (std::size_t j = 0; j < k; j += 4) {
        for (int l = 0; l < 4; ++l) {
            const double pv = j + l == 0 ? prev : e[j + l - 1];
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
    drawdown_block(e, k);
    count += static_cast<std::int64_t>(k);
    prev = last = e[k - 1];
}

void ReturnStats::drawdown_block(const double* e, std::size_t k) {
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

void ReturnStats::finish(Stats& s) const {
    const double m = static_cast<double>(count);
    s.final_equity = last;
    s.total_return = last / capital - 1.0;
    if (count > 0) {
        const double growth = last / capital;
        s.annualized_return = growth > 0.0 ? std::pow(growth, periods_per_year / m) - 1.0 : -1.0;
    }
    const double sum = (s1[0] + s1[1]) + (s1[2] + s1[3]);
    const double sumsq = (s2[0] + s2[1]) + (s2[2] + s2[3]);
    const double down = (d2[0] + d2[1]) + (d2[2] + d2[3]);
    const double ann = std::sqrt(periods_per_year);
    if (count > 0) {
        const double mean = sum / m;
        if (count > 1) {
            double var = (sumsq - sum * mean) / (m - 1.0);
            if (var < 0.0) var = 0.0;
            const double sd = std::sqrt(var);
            s.volatility = sd * ann;
            s.sharpe = sd > 0.0 ? mean / sd * ann : 0.0;
        }
        const double dd = std::sqrt(down / m);
        s.sortino = dd > 0.0 ? mean / dd * ann : 0.0;
    }
    double worst = max_dd;
    if (peak > 0.0) worst = std::max(worst, 1.0 - trough / peak);
    s.max_drawdown = worst;
    s.max_drawdown_duration = max_run;
}

}  // namespace detail

namespace {

using detail::ReturnStats;

// ---- signal generators ----------------------------------------------------------------------
// The bars are processed in chunks of kChunk; prepare(a, k) computes the signals of bars
// [a, a + k) (each from data up to and including its own bar) and at(i) returns bar a + i's.

constexpr std::size_t kChunk = 4096;
using detail::kSmaBlock;
constexpr std::size_t kStreamBars = std::size_t{1} << 17;  // 1 MiB per output: stream the stores
static_assert(kChunk % kSmaBlock == 0 && kChunk / kSmaBlock == 4, "four SMA blocks per chunk");

// What every strategy's raw signal goes through: the direction filter (long-only keeps
// max(s, 0), short-only min(s, 0)) and, with volatility targeting, a warm-up of vol_window bars.
struct Filter {
    int direction;
    std::size_t warmup;
    double apply(double s, std::size_t t) const {
        if (direction == 1) s = s > 0.0 ? s : 0.0;
        else if (direction == 2) s = s < 0.0 ? s : 0.0;
        return t < warmup ? 0.0 : s;
    }
    void apply(signed char* sig, std::size_t a, std::size_t k) const {
        if (direction == 1) {
            for (std::size_t i = 0; i < k; ++i) sig[i] = sig[i] > 0 ? sig[i] : 0;
        } else if (direction == 2) {
            for (std::size_t i = 0; i < k; ++i) sig[i] = sig[i] < 0 ? sig[i] : 0;
        }
        warm_up(sig, a, k);
    }
    void warm_up(signed char* sig, std::size_t a, std::size_t k) const {
        for (std::size_t i = 0; i < k && a + i < warmup; ++i) sig[i] = 0;
    }
};

// first j in [i, k) with sig[j] != cur, else k
inline std::size_t scan_change(const signed char* sig, std::size_t i, std::size_t k, signed char cur) {
#if defined(__SSE2__)
    const __m128i c = _mm_set1_epi8(cur);
    for (; i + 16 <= k; i += 16) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(sig + i));
        const int eq = _mm_movemask_epi8(_mm_cmpeq_epi8(v, c));
        if (eq != 0xFFFF) return i + static_cast<std::size_t>(__builtin_ctz(~eq & 0xFFFF));
    }
#endif
    for (; i < k; ++i) {
        if (sig[i] != cur) return i;
    }
    return k;
}

// Signals of -1/0/+1 held per chunk.
struct Int8Signal {
    signed char sig[kChunk];
    double value(std::size_t i) const { return static_cast<double>(sig[i]); }
    std::size_t next_change(std::size_t i, std::size_t k, double cur) const {
        return scan_change(sig, i, k, static_cast<signed char>(cur));
    }
};

struct TargetSignal {
    const double* target;
    Filter filter;
    std::size_t a = 0;
    void prepare(std::size_t start, std::size_t) { a = start; }
    double value(std::size_t i) const { return filter.apply(target[a + i], a + i); }
    std::size_t next_change(std::size_t i, std::size_t k, double cur) const {
        for (; i < k; ++i) {
            if (value(i) != cur) return i;
        }
        return k;
    }
};

inline signed char cmp_sign(double a, double b) { return static_cast<signed char>((a > b) - (a < b)); }

// SMA crossover: +1 when SMA(fast) > SMA(slow), -1 when below, 0 when equal or in the warm-up
// (t < slow - 1). SMA_fast > SMA_slow is evaluated as sum_fast * slow > sum_slow * fast.
// Window sums: bars are split in blocks of kSmaBlock; in each block the sum at its first bar
// with a full window is summed directly (left to right from 0.0), later bars of the block roll
// it forward: W(t) = W(t - 1) + (c[t] - c[t - w]). Four blocks run in lockstep.
struct SmaSignal : Int8Signal {
    const double* c;
    std::size_t n, fast, slow;
    double dfast, dslow;
    Filter filter;

    SmaSignal(const double* close, std::size_t size, int f, int s, Filter flt)
        : c(close), n(size), fast(static_cast<std::size_t>(f)), slow(static_cast<std::size_t>(s)),
          dfast(static_cast<double>(f)), dslow(static_cast<double>(s)), filter(flt) {}

    double direct(std::size_t t, std::size_t w) const {
        double sum = 0.0;
        for (std::size_t i = t + 1 - w; i <= t; ++i) sum += c[i];
        return sum;
    }

    void block(std::size_t a, std::size_t b, std::size_t e) {
        const std::size_t t0 = std::max(b, slow - 1);
        for (std::size_t t = b; t < e && t < t0; ++t) sig[t - a] = 0;
        if (t0 >= e) return;
        double fs = direct(t0, fast), ss = direct(t0, slow);
        sig[t0 - a] = cmp_sign(fs * dslow, ss * dfast);
        for (std::size_t t = t0 + 1; t < e; ++t) {
            fs += c[t] - c[t - fast];
            ss += c[t] - c[t - slow];
            sig[t - a] = cmp_sign(fs * dslow, ss * dfast);
        }
    }

    void prepare(std::size_t a, std::size_t k) {
        const std::size_t B = kSmaBlock;
        if (k == kChunk && a >= slow - 1 && detail::simd_enabled()) {
            detail::sma_chunk_avx2(c, a, fast, slow, filter.direction, sig);  // direction filtered
            filter.warm_up(sig, a, k);
            return;
        }
        if (k == kChunk && a >= slow - 1) {
            // four blocks in lockstep: eight independent chains
            double fs[4], ss[4];
            for (std::size_t l = 0; l < 4; ++l) {
                const std::size_t t0 = a + l * B;
                fs[l] = direct(t0, fast);
                ss[l] = direct(t0, slow);
                sig[l * B] = cmp_sign(fs[l] * dslow, ss[l] * dfast);
            }
            const double* c0 = c + a;
            const double* cf = c + a - fast;
            const double* cs = c + a - slow;
            for (std::size_t j = 1; j < B; ++j) {
                for (std::size_t l = 0; l < 4; ++l) {
                    fs[l] += c0[l * B + j] - cf[l * B + j];
                    ss[l] += c0[l * B + j] - cs[l * B + j];
                    sig[l * B + j] = cmp_sign(fs[l] * dslow, ss[l] * dfast);
                }
            }
        } else {
            for (std::size_t b = a; b < a + k; b += B) block(a, b, std::min(b + B, a + k));
        }
        filter.apply(sig, a, k);
    }
};

// Momentum: sign(close[t] - close[t - lookback]), 0 in the warm-up (t < lookback).
struct MomentumSignal : Int8Signal {
    const double* c;
    std::size_t lookback;
    Filter filter;
    MomentumSignal(const double* close, std::size_t lb, Filter flt) : c(close), lookback(lb), filter(flt) {}
    void prepare(std::size_t a, std::size_t k) {
        for (std::size_t i = 0; i < k; ++i) {
            const std::size_t t = a + i;
            sig[i] = t < lookback ? 0 : cmp_sign(c[t], c[t - lookback]);
        }
        filter.apply(sig, a, k);
    }
};

// Donchian breakout: +1 when close > the highest high of the previous `lookback` bars, -1 when
// close < their lowest low, otherwise the previous signal (0 in the warm-up, t < lookback).
// Monotonic deques keep it O(n).
struct BreakoutSignal : Int8Signal {
    const double* high;
    const double* low;
    const double* close;
    std::size_t lookback;
    std::vector<std::size_t> maxq, minq;
    std::size_t max_head = 0, min_head = 0;
    signed char state = 0;
    Filter filter;

    BreakoutSignal(const double* h, const double* l, const double* c, std::size_t n, std::size_t lb, Filter flt)
        : high(h), low(l), close(c), lookback(lb), filter(flt) {
        maxq.reserve(n);
        minq.reserve(n);
    }
    signed char step(std::size_t t) {
        signed char out = 0;
        if (t >= lookback) {
            // window is [t - lookback, t - 1]
            while (maxq[max_head] + lookback < t) ++max_head;
            while (minq[min_head] + lookback < t) ++min_head;
            if (close[t] > high[maxq[max_head]]) state = 1;
            else if (close[t] < low[minq[min_head]]) state = -1;
            out = state;
        }
        while (maxq.size() > max_head && high[maxq.back()] <= high[t]) maxq.pop_back();
        maxq.push_back(t);
        while (minq.size() > min_head && low[minq.back()] >= low[t]) minq.pop_back();
        minq.push_back(t);
        return out;
    }
    void prepare(std::size_t a, std::size_t k) {
        for (std::size_t i = 0; i < k; ++i) sig[i] = step(a + i);
        filter.apply(sig, a, k);
    }
};

// ---- trade bookkeeping ----------------------------------------------------------------------

struct OpenTrade {
    std::int64_t entry_bar = 0;
    double direction = 0.0;
    double entered = 0.0, entry_cost = 0.0, exited = 0.0, exit_value = 0.0, fees = 0.0;
};

struct Book {
    std::vector<Trade>* out = nullptr;
    OpenTrade cur;
    bool open = false;
    std::int64_t num_trades = 0, closed = 0, wins = 0;

    void start(std::int64_t bar, double direction) {
        cur = OpenTrade{};
        cur.entry_bar = bar;
        cur.direction = direction;
        open = true;
        ++num_trades;
    }
    void increase(double units, double price, double fee) {
        cur.entered += units;
        cur.entry_cost += units * price;
        cur.fees += fee;
    }
    void decrease(double units, double price, double fee) {
        cur.exited += units;
        cur.exit_value += units * price;
        cur.fees += fee;
    }
    // close: remaining units are marked at `mark` (0 remaining for a real close)
    void finish(std::int64_t bar, double remaining, double mark, bool is_closed) {
        const double exit_value = cur.exit_value + remaining * mark;
        const double exit_units = cur.exited + remaining;
        const double pnl = cur.direction * (exit_value - cur.entry_cost) - cur.fees;
        if (is_closed) {
            ++closed;
            if (pnl > 0.0) ++wins;
        }
        if (out) {
            Trade tr;
            tr.entry_bar = cur.entry_bar;
            tr.exit_bar = bar;
            tr.direction = static_cast<std::int64_t>(cur.direction);
            tr.closed = is_closed ? 1 : 0;
            tr.quantity = cur.entered;
            tr.entry_price = cur.entry_cost / cur.entered;
            tr.exit_price = exit_units > 0.0 ? exit_value / exit_units : 0.0;
            tr.pnl = pnl;
            tr.return_pct = pnl / cur.entry_cost;
            tr.fees = cur.fees;
            out->push_back(tr);
        }
        open = false;
    }
};

inline double sgn(double x) { return static_cast<double>((x > 0.0) - (x < 0.0)); }

// Realised volatility (annualised) of the vol_window simple close-to-close returns ending at t.
double realised_vol(const double* c, std::size_t t, std::size_t window, double periods_per_year) {
    double sum = 0.0;
    for (std::size_t i = t + 1 - window; i <= t; ++i) sum += c[i] / c[i - 1] - 1.0;
    const double mean = sum / static_cast<double>(window);
    double ss = 0.0;
    for (std::size_t i = t + 1 - window; i <= t; ++i) {
        const double d = (c[i] / c[i - 1] - 1.0) - mean;
        ss += d * d;
    }
    return std::sqrt(ss / static_cast<double>(window - 1)) * std::sqrt(periods_per_year);
}

// The chunk's equity e[t] = cash + q * c[t] from its segments, written to eq and pos when they are
// not null, and its returns and drawdown fed to rs: the scalar reference of equity_chunk_avx2
// (same steps of eight bars, same lanes, same skipped steps, so the results are bit-identical).
// A step that lies in a flat segment (q == 0) past the segment's first bar has returns of exactly
// 0 and skips the divisions.
void equity_chunk(ReturnStats& rs, const double* c, std::size_t k, const detail::Segment* seg, std::size_t m,
                  double* eq, double* pos) {
    double s1[4], s2[4], d2[4];
    for (int l = 0; l < 4; ++l) {
        s1[l] = rs.s1[l];
        s2[l] = rs.s2[l];
        d2[l] = rs.d2[l];
    }
    double prev = rs.prev;
    std::size_t si = 0;
    std::size_t next = m > 1 ? seg[1].start : k;
    const std::size_t k8 = k & ~static_cast<std::size_t>(7);
    double scratch[kChunk];  // the equity when it is not recorded, for the drawdown pass
    double* e = eq ? eq : scratch;
    for (std::size_t t = 0; t < k8; t += 8) {
        double* x = e + t;
        double pv[8], r[8];
        bool skip = false;
        if (t + 8 <= next) {  // the whole step in one segment
            const double cash = seg[si].cash, q = seg[si].q;
            for (std::size_t l = 0; l < 8; ++l) x[l] = cash + q * c[t + l];
            if (pos) std::fill(pos + t, pos + t + 8, q);
            skip = q == 0.0 && t > seg[si].start;
        } else {
            for (std::size_t l = 0; l < 8; ++l) {
                while (next <= t + l) {
                    ++si;
                    next = si + 1 < m ? seg[si + 1].start : k;
                }
                x[l] = seg[si].cash + seg[si].q * c[t + l];
                if (pos) pos[t + l] = seg[si].q;
            }
        }
        if (!skip) {
            pv[0] = prev;
            for (std::size_t l = 1; l < 8; ++l) pv[l] = x[l - 1];
            for (std::size_t l = 0; l < 8; ++l) {  // branch-free, so that it vectorises
                const bool ok = pv[l] > 0.0;
                const double ratio = x[l] / (ok ? pv[l] : 1.0) - 1.0;
                r[l] = ok ? ratio : 0.0;
            }
            for (std::size_t h = 0; h < 8; h += 4) {
                for (std::size_t l = 0; l < 4; ++l) {
                    s1[l] += r[h + l];
                    s2[l] += r[h + l] * r[h + l];
                    const double dn = r[h + l] < 0.0 ? r[h + l] : 0.0;
                    d2[l] += dn * dn;
                }
            }
        }
        prev = x[7];
    }
    if (k8 > 0) rs.drawdown_block(e, k8);
    for (int l = 0; l < 4; ++l) {
        rs.s1[l] = s1[l];
        rs.s2[l] = s2[l];
        rs.d2[l] = d2[l];
    }
    rs.count += static_cast<std::int64_t>(k8);
    rs.prev = rs.last = prev;
    // the last bars of the series, one by one
    for (std::size_t t = k8; t < k; ++t) {
        while (si + 1 < m && seg[si + 1].start <= t) ++si;
        const double x = seg[si].cash + seg[si].q * c[t];
        if (eq) eq[t] = x;
        if (pos) pos[t] = seg[si].q;
        rs.add(x);
    }
}

template <bool kValidate, class Signal>
Stats simulate(const BarsView& bars, const double* target, const BacktestConfig& cfg, const BacktestOutput& out,
               Signal& signal) {
    const std::size_t n = bars.size;
    const double* open = bars.open;
    const double* close = bars.close;
    const double fr = cfg.fee_bps / 10000.0;
    const double slip = cfg.slippage_bps / 10000.0;
    const double lot = cfg.lot_size;
    const bool vol_target = cfg.sizing == Sizing::VolTarget;
    const std::size_t vol_window = static_cast<std::size_t>(cfg.vol_window);

    double cash = cfg.initial_capital;
    double q = 0.0;
    double s_prev = 0.0;
    double pending_w = 0.0;
    bool pending = false;
    double traded = 0.0, fees = 0.0;
    std::int64_t fills = 0, exposed = 0;
    Book book;
    book.out = out.trades;
    ReturnStats rs(cfg.initial_capital, cfg.periods_per_year);
    // per chunk: the runs of bars holding one position (their equity is cash + q * close)
    std::vector<detail::Segment> segments(std::min(n, kChunk));
    std::size_t m = 0;  // segments of the current chunk
    const bool simd = detail::simd_enabled();
    // outputs larger than the caches are written around them (non-temporal stores), when aligned
    auto aligned = [](const double* p) { return p == nullptr || reinterpret_cast<std::uintptr_t>(p) % 32 == 0; };
    const bool stream = simd && n >= kStreamBars && (out.equity || out.positions) && aligned(out.equity) &&
                        aligned(out.positions);

    // the rare path: an order executes at bar t's open
    auto execute = [&](std::size_t t) {
        const double p = open[t];
        const double equity = cash + q * p;
        const double pb = p * (1.0 + slip);
        double qb = pending_w * equity / (pb * (1.0 + fr));
        if (lot > 0.0) qb = std::trunc(qb / lot) * lot;
        double target_q = q, price = pb;
        if (qb > q) {
            target_q = qb;
        } else {
            const double ps = p * (1.0 - slip);
            double qs = pending_w * equity / (ps * (1.0 + fr));
            if (lot > 0.0) qs = std::trunc(qs / lot) * lot;
            if (!(qs < q)) return;
            target_q = qs;
            price = ps;
        }
        const double d = target_q - q;
        const double notional = std::fabs(d) * price;
        const double fee = notional * fr;
        cash = cash - d * price - fee;
        traded += notional;
        fees += fee;
        ++fills;
        const std::int64_t bar = static_cast<std::int64_t>(t);
        const double aq = std::fabs(q), at = std::fabs(target_q);
        if (q == 0.0) {
            book.start(bar, sgn(target_q));
            book.increase(at, price, fee);
        } else if (target_q == 0.0 || sgn(target_q) == sgn(q)) {
            if (at > aq) {
                book.increase(at - aq, price, fee);
            } else {
                book.decrease(aq - at, price, fee);
                if (target_q == 0.0) book.finish(bar, 0.0, 0.0, true);
            }
        } else {  // reversal: close the old trade, open the new one
            book.decrease(aq, price, aq * price * fr);
            book.finish(bar, 0.0, 0.0, true);
            book.start(bar, sgn(target_q));
            book.increase(at, price, at * price * fr);
        }
        q = target_q;
    };
    // the rare path: the signal changed at bar t; size the order for bar t + 1
    auto on_signal = [&](std::size_t t, double sig) {
        double w;
        if (!vol_target) {
            w = sig * cfg.fraction;
        } else if (sig == 0.0) {
            w = 0.0;
        } else {
            const double vol = realised_vol(close, t, vol_window, cfg.periods_per_year);
            const double scale = vol > 0.0 ? std::min(cfg.max_leverage, cfg.target_vol / vol) : cfg.max_leverage;
            w = sig * scale;
        }
        pending_w = w;
        pending = true;
    };

    for (std::size_t a = 0; a < n; a += kChunk) {
        const std::size_t k = std::min(kChunk, n - a);
        if (kValidate) {
            validate_range(bars, a, k);
            if (target) {
                require_all_finite(target, a, k, "backtest: target");
            }
        }
        signal.prepare(a, k);
        double* eq = out.equity ? out.equity + a : nullptr;
        double* pos = out.positions ? out.positions + a : nullptr;
        const double* c = close + a;
        m = 0;
        std::size_t i = 0;
        while (i < k) {
            if (pending) {
                pending = false;
                execute(a + i);
            }
            // bars i..j hold the same position: j is the next bar whose signal differs
            const std::size_t j = signal.next_change(i, k, s_prev);
            const std::size_t end = j < k ? j + 1 : k;
            detail::Segment& sg = segments[m++];
            sg.start = i;
            sg.cash = cash;
            sg.q = q;
            if (q != 0.0) exposed += static_cast<std::int64_t>(end - i);
            if (j < k) {
                s_prev = signal.value(j);
                if (a + j + 1 < n) on_signal(a + j, s_prev);
            }
            i = end;
        }
        // equity, positions, returns and drawdown of the chunk, in one pass
        if (simd) {
            detail::Prefetch next;
            if (a + kChunk < n) {
                for (const double* col : {open, close, bars.high, bars.low, bars.volume, target}) {
                    if (col) next.column[next.count++] = col + a + kChunk;
                }
                next.bars = std::min(kChunk, n - a - kChunk);
            }
            detail::equity_chunk_avx2(rs, c, k, segments.data(), m, eq, pos, next, stream);
        } else {
            equity_chunk(rs, c, k, segments.data(), m, eq, pos);
        }
    }
    if (book.open) book.finish(static_cast<std::int64_t>(n - 1), std::fabs(q), close[n - 1], false);

    Stats st;
    rs.finish(st);
    st.turnover = traded / cfg.initial_capital;
    st.num_trades = book.num_trades;
    st.hit_rate = book.closed > 0 ? static_cast<double>(book.wins) / static_cast<double>(book.closed) : 0.0;
    st.num_fills = fills;
    st.total_fees = fees;
    st.exposure = static_cast<double>(exposed) / static_cast<double>(n);
    return st;
}

template <bool kValidate>
Stats dispatch(const BarsView& bars, const double* target, const BacktestConfig& cfg, const BacktestOutput& out) {
    const Filter filter{static_cast<int>(cfg.direction),
                        cfg.sizing == Sizing::VolTarget ? static_cast<std::size_t>(cfg.vol_window) : 0};
    switch (cfg.strategy) {
        case Strategy::Target: {
            TargetSignal sig{target, filter};
            return simulate<kValidate>(bars, target, cfg, out, sig);
        }
        case Strategy::SmaCross: {
            SmaSignal sig(bars.close, bars.size, cfg.fast, cfg.slow, filter);
            return simulate<kValidate>(bars, nullptr, cfg, out, sig);
        }
        case Strategy::Momentum: {
            MomentumSignal sig(bars.close, static_cast<std::size_t>(cfg.lookback), filter);
            return simulate<kValidate>(bars, nullptr, cfg, out, sig);
        }
        case Strategy::Breakout: {
            const double* h = bars.high ? bars.high : bars.close;
            const double* l = bars.low ? bars.low : bars.close;
            BreakoutSignal sig(h, l, bars.close, bars.size, static_cast<std::size_t>(cfg.lookback), filter);
            return simulate<kValidate>(bars, nullptr, cfg, out, sig);
        }
    }
    throw std::invalid_argument("backtest config: unknown strategy");
}

}  // namespace

namespace detail {

Stats run_validated(const BarsView& bars, const double* target, const BacktestConfig& cfg,
                    const BacktestOutput& out) {
    return dispatch<false>(bars, target, cfg, out);
}

}  // namespace detail

Stats run_backtest(const BarsView& bars, const double* target, const BacktestConfig& config,
                   const BacktestOutput& out) {
    validate_config(config);
    if (bars.size == 0) throw std::invalid_argument("bars: the series is empty");
    if (bars.open == nullptr || bars.close == nullptr) throw std::invalid_argument("bars: open and close are required");
    if (config.strategy == Strategy::Target && target == nullptr) {
        throw std::invalid_argument("backtest: strategy 'target' needs a target series");
    }
    if (out.trades) out.trades->clear();
    // the bars are validated chunk by chunk as the simulation reaches them (while they are hot
    // in cache); an invalid value anywhere still throws before a result is returned
    return dispatch<true>(bars, config.strategy == Strategy::Target ? target : nullptr, config, out);
}

BacktestResult backtest(const Bars& bars, const BacktestConfig& config, const std::vector<double>* target) {
    const BarsView view = bars.view();
    if (target && target->size() != view.size) {
        throw std::invalid_argument("backtest: target has " + std::to_string(target->size()) +
                                    " values but the bars have " + std::to_string(view.size));
    }
    BacktestResult r;
    r.equity.resize(view.size);
    r.positions.resize(view.size);
    BacktestOutput out{r.equity.data(), r.positions.data(), &r.trades};
    r.stats = run_backtest(view, target ? target->data() : nullptr, config, out);
    return r;
}

Stats equity_stats(const double* equity, std::size_t n, double initial_capital, double periods_per_year) {
    if (n == 0) throw std::invalid_argument("equity_stats: the equity curve is empty");
    if (!(initial_capital > 0.0) || !std::isfinite(initial_capital)) {
        throw std::invalid_argument("equity_stats: initial_capital must be finite and > 0");
    }
    if (!(periods_per_year > 0.0) || !std::isfinite(periods_per_year)) {
        throw std::invalid_argument("equity_stats: periods_per_year must be finite and > 0");
    }
    require_all_finite(equity, 0, n, "equity_stats: equity");
    ReturnStats rs(initial_capital, periods_per_year);
    rs.add_block(equity, n);
    Stats s;
    rs.finish(s);
    return s;
}

}  // namespace risk_core
