// AVX2 versions of the backtester's hot loops (SMA signals, the equity/returns/drawdown pass,
// input checks), chosen at run time (once) when the CPU has AVX2; the scalar code in
// backtest.cpp / bars.cpp is the reference and the fallback.
//
// The kernels perform exactly the same IEEE operations, in the same order per value, as the
// scalar code (no FMA: the target is "avx2" alone, so nothing is contracted), so results are
// bit-identical whichever path runs; tests/test_backtest.cpp checks that (Simd.*). The shipped
// build needs no -march flag: only these functions are compiled for AVX2. (A build with -mfma or
// -march=native would let the compiler contract the scalar code, and Simd.* would say so.)
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "internal.hpp"

#if RISK_CORE_HAVE_AVX2_KERNELS
#include <immintrin.h>
#endif

namespace risk_core {
namespace detail {

#if RISK_CORE_HAVE_AVX2_KERNELS

namespace {

bool cpu_has_avx2() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

bool g_simd = cpu_has_avx2();

#define RISK_CORE_AVX2 __attribute__((target("avx2")))

// 4x4 transpose: rows r[l] = (x[l][u], u = 0..3) -> columns c[u] = (x[l][u], l = 0..3)
RISK_CORE_AVX2 inline void transpose4(const __m256d r[4], __m256d c[4]) {
    const __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]);  // r0[0] r1[0] r0[2] r1[2]
    const __m256d t1 = _mm256_unpackhi_pd(r[0], r[1]);  // r0[1] r1[1] r0[3] r1[3]
    const __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]);
    const __m256d t3 = _mm256_unpackhi_pd(r[2], r[3]);
    c[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
    c[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    c[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    c[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

}  // namespace

bool simd_enabled() { return g_simd; }

void set_simd_enabled(bool on) { g_simd = on && cpu_has_avx2(); }

namespace {

// The SMA state of the four lanes and the per-offset comparison bits.
struct SmaLanes {
    __m256d F, S;     // window sums, lane l = block l
    __m256d vs, vf;   // slow and fast as doubles (the comparison is F * slow vs S * fast)
    unsigned char* bits;
};

// bits[j]: bit l = lane l's SMA(fast) > SMA(slow) at offset j (when kUp), bit 4 + l = below
// (when kDown); a direction the filter drops is not computed
template <bool kUp, bool kDown>
RISK_CORE_AVX2 inline void sma_compare(SmaLanes& s, std::size_t j) {
    const __m256d x = _mm256_mul_pd(s.F, s.vs), y = _mm256_mul_pd(s.S, s.vf);
    int b = 0;
    if (kUp) b |= _mm256_movemask_pd(_mm256_cmp_pd(x, y, _CMP_GT_OQ));
    if (kDown) b |= _mm256_movemask_pd(_mm256_cmp_pd(x, y, _CMP_LT_OQ)) << 4;
    s.bits[j] = static_cast<unsigned char>(b);
}

// offsets g + from .. g + 3: the differences of four consecutive bars of each block, transposed
// to one vector per offset, then rolled into the sums one offset at a time
template <bool kUp, bool kDown>
RISK_CORE_AVX2 inline void sma_group(SmaLanes& s, const double* const base[4], std::size_t fast, std::size_t slow,
                                     std::size_t g, std::size_t from) {
    __m256d df[4], ds[4], cf[4], cs[4];
    for (int l = 0; l < 4; ++l) {
        const double* p = base[l] + g;
        const __m256d x = _mm256_loadu_pd(p);
        df[l] = _mm256_sub_pd(x, _mm256_loadu_pd(p - fast));
        ds[l] = _mm256_sub_pd(x, _mm256_loadu_pd(p - slow));
    }
    transpose4(df, cf);
    transpose4(ds, cs);
    for (std::size_t u = from; u < 4; ++u) {
        s.F = _mm256_add_pd(s.F, cf[u]);
        s.S = _mm256_add_pd(s.S, cs[u]);
        sma_compare<kUp, kDown>(s, g + u);
    }
}

// The four SMA blocks of a chunk in the four lanes of a vector: lane l is block l (bars
// a + l*B .. a + l*B + B - 1). Per lane this is the scalar recurrence of SmaSignal::block:
// W(t) = W(t - 1) + (c[t] - c[t - w]) from a left-to-right direct sum at the block's first bar.
// The differences are formed four bars at a time along each block (contiguous loads) and
// transposed so that one vector holds the same offset j of the four blocks.
template <bool kUp, bool kDown>
RISK_CORE_AVX2 void sma_chunk(const double* c, std::size_t a, std::size_t fast, std::size_t slow, signed char* sig) {
    constexpr std::size_t B = kSmaBlock;
    const double* const base[4] = {c + a, c + a + B, c + a + 2 * B, c + a + 3 * B};
    alignas(16) unsigned char bits[B];
    SmaLanes s;
    s.bits = bits;
    s.vs = _mm256_set1_pd(static_cast<double>(slow));
    s.vf = _mm256_set1_pd(static_cast<double>(fast));
    // direct sums at offset 0, the four lanes in lockstep (each summed left to right from 0.0)
    s.F = _mm256_setzero_pd();
    s.S = _mm256_setzero_pd();
    const std::ptrdiff_t nf = static_cast<std::ptrdiff_t>(fast), ns = static_cast<std::ptrdiff_t>(slow);
    for (std::ptrdiff_t o = 1 - nf; o <= 0; ++o) {  // o: offset from the lane's first bar
        s.F = _mm256_add_pd(s.F, _mm256_set_pd(base[3][o], base[2][o], base[1][o], base[0][o]));
    }
    for (std::ptrdiff_t o = 1 - ns; o <= 0; ++o) {
        s.S = _mm256_add_pd(s.S, _mm256_set_pd(base[3][o], base[2][o], base[1][o], base[0][o]));
    }
    sma_compare<kUp, kDown>(s, 0);
    // offsets 1 .. B - 1 in groups of four (1..4, 5..8, ...), the last three from group B - 4
    std::size_t g = 1;
    for (; g + 4 <= B; g += 4) sma_group<kUp, kDown>(s, base, fast, slow, g, 0);
    sma_group<kUp, kDown>(s, base, fast, slow, B - 4, g - (B - 4));
    // back to one signed byte per bar, lane by lane: +1 above, -1 below, 0 equal (or dropped)
    const __m128i one = _mm_set1_epi8(1);
    for (int l = 0; l < 4; ++l) {
        const __m128i sh_up = _mm_cvtsi32_si128(l), sh_down = _mm_cvtsi32_si128(l + 4);
        signed char* out = sig + static_cast<std::size_t>(l) * B;
        for (std::size_t j = 0; j < B; j += 16) {
            const __m128i v = _mm_load_si128(reinterpret_cast<const __m128i*>(bits + j));
            const __m128i up = _mm_and_si128(_mm_srl_epi16(v, sh_up), one);
            const __m128i down = _mm_and_si128(_mm_srl_epi16(v, sh_down), one);
            _mm_storeu_si128(reinterpret_cast<__m128i*>(out + j), _mm_sub_epi8(up, down));
        }
    }
}

}  // namespace

void sma_chunk_avx2(const double* c, std::size_t a, std::size_t fast, std::size_t slow, int direction,
                    signed char* sig) {
    if (direction == 1) {
        sma_chunk<true, false>(c, a, fast, slow, sig);
    } else if (direction == 2) {
        sma_chunk<false, true>(c, a, fast, slow, sig);
    } else {
        sma_chunk<true, true>(c, a, fast, slow, sig);
    }
}

namespace {

// r = x / pv - 1 where pv > 0, else 0; then the three lane sums
RISK_CORE_AVX2 inline void return_step(__m256d& a1, __m256d& a2, __m256d& a3, __m256d x, __m256d pv) {
    const __m256d zero = _mm256_setzero_pd();
    const __m256d ok = _mm256_cmp_pd(pv, zero, _CMP_GT_OQ);
    const __m256d r = _mm256_and_pd(ok, _mm256_sub_pd(_mm256_div_pd(x, pv), _mm256_set1_pd(1.0)));
    a1 = _mm256_add_pd(a1, r);
    a2 = _mm256_add_pd(a2, _mm256_mul_pd(r, r));
    const __m256d dn = _mm256_min_pd(r, zero);  // r < 0 ? r : 0
    a3 = _mm256_add_pd(a3, _mm256_mul_pd(dn, dn));
}

RISK_CORE_AVX2 inline double hmin(__m256d v) {
    const __m128d m = _mm_min_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return std::min(_mm_cvtsd_f64(m), _mm_cvtsd_f64(_mm_unpackhi_pd(m, m)));
}

}  // namespace

namespace {

// The drawdown state of return_block_avx2 / equity_chunk_avx2: a lane-wise minimum while no value
// reaches the peak; when one does, the values are stepped through one by one exactly as
// ReturnStats::drawdown_block does.
struct DrawdownLanes {
    double pk, tr, mdd;
    std::int64_t rn, mr;
    std::size_t since = 0;  // values below the peak since the last slow step, not yet in rn
    __m256d peak, low;

    RISK_CORE_AVX2 explicit DrawdownLanes(const ReturnStats& rs)
        : pk(rs.peak), tr(rs.trough), mdd(rs.max_dd), rn(rs.run), mr(rs.max_run),
          peak(_mm256_set1_pd(rs.peak)), low(_mm256_set1_pd(rs.trough)) {}

    RISK_CORE_AVX2 inline void slow(const double* v, int count) {
        tr = std::min(tr, hmin(low));
        rn += static_cast<std::int64_t>(since);
        mr = std::max(mr, rn);
        since = 0;
        for (int l = 0; l < count; ++l) {
            if (v[l] >= pk) {
                if (tr < pk) mdd = std::max(mdd, 1.0 - tr / pk);
                pk = v[l];
                tr = v[l];
                rn = 0;
            } else {
                tr = std::min(tr, v[l]);
                ++rn;
                mr = std::max(mr, rn);
            }
        }
        peak = _mm256_set1_pd(pk);
        low = _mm256_set1_pd(tr);
    }

    // four values
    RISK_CORE_AVX2 inline void add4(__m256d x) {
        if (_mm256_movemask_pd(_mm256_cmp_pd(x, peak, _CMP_GE_OQ)) == 0) {
            low = _mm256_min_pd(low, x);
            since += 4;
            return;
        }
        alignas(32) double v[4];
        _mm256_store_pd(v, x);
        slow(v, 4);
    }

    // eight values
    RISK_CORE_AVX2 inline void add8(__m256d x0, __m256d x1) {
        const __m256d ge = _mm256_or_pd(_mm256_cmp_pd(x0, peak, _CMP_GE_OQ), _mm256_cmp_pd(x1, peak, _CMP_GE_OQ));
        if (_mm256_movemask_pd(ge) == 0) {
            low = _mm256_min_pd(low, _mm256_min_pd(x0, x1));
            since += 8;
            return;
        }
        alignas(32) double v[8];
        _mm256_store_pd(v, x0);
        _mm256_store_pd(v + 4, x1);
        slow(v, 8);
    }

    RISK_CORE_AVX2 inline void store(ReturnStats& rs) {
        tr = std::min(tr, hmin(low));
        rn += static_cast<std::int64_t>(since);
        rs.peak = pk;
        rs.trough = tr;
        rs.max_dd = mdd;
        rs.run = rn;
        rs.max_run = std::max(mr, rn);
    }
};

// Stores of the per-bar outputs: plain, or non-temporal for large aligned outputs (they bypass
// the caches: no read of the destination lines, and the input columns stay cached).
template <bool kStream>
RISK_CORE_AVX2 inline void put(double* p, __m256d v) {
    if (kStream) {
        _mm256_stream_pd(p, v);
    } else {
        _mm256_storeu_pd(p, v);
    }
}

// equity_chunk_avx2 for the outputs present: eight bars per step, lane l of the first vector
// bar t + l, of the second t + 4 + l. A step that straddles segments blends each lane's cash and
// q from its own segment. Steps inside a flat segment (q == 0) past its first bar have returns
// of exactly 0 and skip the division (the sums would not change).
template <bool kEq, bool kPos, bool kStream>
RISK_CORE_AVX2 void equity_chunk(ReturnStats& rs, const double* c, std::size_t k, const Segment* seg, std::size_t m,
                                 double* eq, double* pos, const Prefetch& ahead) {
    __m256d a1 = _mm256_loadu_pd(rs.s1), a2 = _mm256_loadu_pd(rs.s2), a3 = _mm256_loadu_pd(rs.d2);
    DrawdownLanes dd(rs);
    const double* pf[6];
    const int npf = ahead.count;
    const std::size_t pf_bars = ahead.bars;
    for (int i = 0; i < npf; ++i) pf[i] = ahead.column[i];
    std::size_t si = 0;  // the segment of the last bar seen
    std::size_t next = m > 1 ? seg[1].start : k;
    constexpr std::size_t kNever = ~static_cast<std::size_t>(0);
    // returns are all 0 in a step that lies in a flat segment which started before it
    std::size_t flat_after = seg[0].q == 0.0 ? seg[0].start : kNever;
    __m256d cash = _mm256_set1_pd(seg[0].cash), q = _mm256_set1_pd(seg[0].q);
    __m256d last = _mm256_set1_pd(rs.prev);  // the previous bar's equity, in every lane
    const std::size_t k8 = k & ~static_cast<std::size_t>(7);
    for (std::size_t t = 0; t < k8; t += 8) {
        // one cache line (8 bars) of each column of the next chunk per step, and the outputs
        // (written, not read) a few lines ahead when they go through the caches
        if (t < pf_bars) {
            for (int i = 0; i < npf; ++i) _mm_prefetch(reinterpret_cast<const char*>(pf[i] + t), _MM_HINT_T0);
        }
        if (!kStream && t + 256 < k) {
            if (kEq) __builtin_prefetch(eq + t + 256, 1, 3);
            if (kPos) __builtin_prefetch(pos + t + 256, 1, 3);
        }
        const __m256d y0 = _mm256_loadu_pd(c + t), y1 = _mm256_loadu_pd(c + t + 4);
        __m256d x0, x1;
        bool skip;
        if (t + 8 <= next) {  // the whole step in one segment
            x0 = _mm256_add_pd(cash, _mm256_mul_pd(q, y0));
            x1 = _mm256_add_pd(cash, _mm256_mul_pd(q, y1));
            if (kPos) {
                put<kStream>(pos + t, q);
                put<kStream>(pos + t + 4, q);
            }
            skip = t > flat_after;
        } else {  // segments start inside this step: each lane takes its own segment's cash and q
            const __m256d lanes_lo = _mm256_set_pd(3, 2, 1, 0), lanes_hi = _mm256_set_pd(7, 6, 5, 4);
            __m256d c0 = cash, q0 = q, c1 = cash, q1 = q;
            while (next < t + 8) {
                ++si;
                cash = _mm256_set1_pd(seg[si].cash);
                q = _mm256_set1_pd(seg[si].q);
                const __m256d from = _mm256_set1_pd(static_cast<double>(next - t));
                const __m256d m0 = _mm256_cmp_pd(lanes_lo, from, _CMP_GE_OQ);
                const __m256d m1 = _mm256_cmp_pd(lanes_hi, from, _CMP_GE_OQ);
                c0 = _mm256_blendv_pd(c0, cash, m0);
                q0 = _mm256_blendv_pd(q0, q, m0);
                c1 = _mm256_blendv_pd(c1, cash, m1);
                q1 = _mm256_blendv_pd(q1, q, m1);
                next = si + 1 < m ? seg[si + 1].start : k;
            }
            flat_after = seg[si].q == 0.0 ? seg[si].start : kNever;
            x0 = _mm256_add_pd(c0, _mm256_mul_pd(q0, y0));
            x1 = _mm256_add_pd(c1, _mm256_mul_pd(q1, y1));
            if (kPos) {
                put<kStream>(pos + t, q0);
                put<kStream>(pos + t + 4, q1);
            }
            skip = false;
        }
        if (kEq) {
            put<kStream>(eq + t, x0);
            put<kStream>(eq + t + 4, x1);
        }
        if (!skip) {
            // previous equities: (last, x0[0..2]) and (x0[3], x1[0..2])
            const __m256d p0 = _mm256_blend_pd(_mm256_permute4x64_pd(x0, _MM_SHUFFLE(2, 1, 0, 3)), last, 0x1);
            const __m256d p1 = _mm256_blend_pd(_mm256_permute4x64_pd(x1, _MM_SHUFFLE(2, 1, 0, 3)),
                                               _mm256_permute4x64_pd(x0, _MM_SHUFFLE(3, 3, 3, 3)), 0x1);
            return_step(a1, a2, a3, x0, p0);
            return_step(a1, a2, a3, x1, p1);
        }
        last = _mm256_permute4x64_pd(x1, _MM_SHUFFLE(3, 3, 3, 3));
        dd.add8(x0, x1);
    }
    _mm256_storeu_pd(rs.s1, a1);
    _mm256_storeu_pd(rs.s2, a2);
    _mm256_storeu_pd(rs.d2, a3);
    if (kStream) _mm_sfence();  // the streamed stores are ordered before anything that follows
    dd.store(rs);
    rs.count += static_cast<std::int64_t>(k8);
    if (k8 > 0) rs.prev = rs.last = _mm256_cvtsd_f64(last);
    // the last bars of the series, one by one
    for (std::size_t t = k8; t < k; ++t) {
        while (si + 1 < m && seg[si + 1].start <= t) ++si;
        const double x = seg[si].cash + seg[si].q * c[t];
        if (kEq) eq[t] = x;
        if (kPos) pos[t] = seg[si].q;
        rs.add(x);
    }
}

}  // namespace

// ReturnStats::block4 four bars per instruction: lane l of the sums takes e[4i + l].
RISK_CORE_AVX2 void return_block_avx2(ReturnStats& rs, const double* e, std::size_t k) {
    __m256d a1 = _mm256_loadu_pd(rs.s1), a2 = _mm256_loadu_pd(rs.s2), a3 = _mm256_loadu_pd(rs.d2);
    DrawdownLanes dd(rs);
    for (std::size_t j = 0; j < k; j += 4) {
        const __m256d x = _mm256_loadu_pd(e + j);
        return_step(a1, a2, a3, x, j == 0 ? _mm256_set_pd(e[2], e[1], e[0], rs.prev) : _mm256_loadu_pd(e + j - 1));
        dd.add4(x);
    }
    _mm256_storeu_pd(rs.s1, a1);
    _mm256_storeu_pd(rs.s2, a2);
    _mm256_storeu_pd(rs.d2, a3);
    dd.store(rs);
    rs.count += static_cast<std::int64_t>(k);
    rs.prev = rs.last = e[k - 1];
}

void equity_chunk_avx2(ReturnStats& rs, const double* c, std::size_t k, const Segment* seg, std::size_t m, double* eq,
                       double* pos, const Prefetch& next, bool stream) {
    if (eq && pos) {
        if (stream) {
            equity_chunk<true, true, true>(rs, c, k, seg, m, eq, pos, next);
        } else {
            equity_chunk<true, true, false>(rs, c, k, seg, m, eq, pos, next);
        }
    } else if (eq) {
        if (stream) {
            equity_chunk<true, false, true>(rs, c, k, seg, m, eq, pos, next);
        } else {
            equity_chunk<true, false, false>(rs, c, k, seg, m, eq, pos, next);
        }
    } else if (pos) {
        if (stream) {
            equity_chunk<false, true, true>(rs, c, k, seg, m, eq, pos, next);
        } else {
            equity_chunk<false, true, false>(rs, c, k, seg, m, eq, pos, next);
        }
    } else {
        equity_chunk<false, false, false>(rs, c, k, seg, m, eq, pos, next);
    }
}

// every value > 0 (NaN fails) and below +inf: a lane-wise "x > 0" mask and a running maximum
RISK_CORE_AVX2 bool all_positive_finite_avx2(const double* p, std::size_t n) {
    const __m256d zero = _mm256_setzero_pd();
    __m256d ok0 = _mm256_cmp_pd(zero, zero, _CMP_EQ_OQ), ok1 = ok0;
    __m256d hi0 = zero, hi1 = zero;
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256d x0 = _mm256_loadu_pd(p + i), x1 = _mm256_loadu_pd(p + i + 4);
        ok0 = _mm256_and_pd(ok0, _mm256_cmp_pd(x0, zero, _CMP_GT_OQ));
        ok1 = _mm256_and_pd(ok1, _mm256_cmp_pd(x1, zero, _CMP_GT_OQ));
        hi0 = _mm256_max_pd(hi0, x0);
        hi1 = _mm256_max_pd(hi1, x1);
    }
    const __m256d inf = _mm256_set1_pd(HUGE_VAL);
    const __m256d ok = _mm256_and_pd(_mm256_and_pd(ok0, ok1), _mm256_cmp_pd(_mm256_max_pd(hi0, hi1), inf, _CMP_LT_OQ));
    bool good = _mm256_movemask_pd(ok) == 0xF;
    for (; i < n; ++i) good &= (p[i] > 0.0) & (p[i] < HUGE_VAL);
    return good;
}

// every hi[i] >= lo[i] (NaN fails)
RISK_CORE_AVX2 bool all_ge_avx2(const double* hi, const double* lo, std::size_t n) {
    __m256d ok = _mm256_castsi256_pd(_mm256_set1_epi64x(-1));
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        ok = _mm256_and_pd(ok, _mm256_cmp_pd(_mm256_loadu_pd(hi + i), _mm256_loadu_pd(lo + i), _CMP_GE_OQ));
    }
    bool good = _mm256_movemask_pd(ok) == 0xF;
    for (; i < n; ++i) good &= hi[i] >= lo[i];
    return good;
}

// every value >= 0 (NaN fails) and below +inf
RISK_CORE_AVX2 bool all_nonnegative_finite_avx2(const double* p, std::size_t n) {
    const __m256d zero = _mm256_setzero_pd();
    __m256d ok = _mm256_castsi256_pd(_mm256_set1_epi64x(-1)), hi = zero;
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const __m256d x = _mm256_loadu_pd(p + i);
        ok = _mm256_and_pd(ok, _mm256_cmp_pd(x, zero, _CMP_GE_OQ));
        hi = _mm256_max_pd(hi, x);
    }
    ok = _mm256_and_pd(ok, _mm256_cmp_pd(hi, _mm256_set1_pd(HUGE_VAL), _CMP_LT_OQ));
    bool good = _mm256_movemask_pd(ok) == 0xF;
    for (; i < n; ++i) good &= (p[i] >= 0.0) & (p[i] < HUGE_VAL);
    return good;
}

#else  // no AVX2 kernels on this compiler / architecture: the scalar code always runs

bool simd_enabled() { return false; }
void set_simd_enabled(bool) {}
void sma_chunk_avx2(const double*, std::size_t, std::size_t, std::size_t, int, signed char*) {}
void return_block_avx2(ReturnStats&, const double*, std::size_t) {}
void equity_chunk_avx2(ReturnStats&, const double*, std::size_t, const Segment*, std::size_t, double*, double*,
                       const Prefetch&, bool) {}
bool all_positive_finite_avx2(const double*, std::size_t) { return false; }
bool all_ge_avx2(const double*, const double*, std::size_t) { return false; }
bool all_nonnegative_finite_avx2(const double*, std::size_t) { return false; }

#endif

}  // namespace detail

const char* simd_path() { return detail::simd_enabled() ? "avx2" : "scalar"; }

void set_simd(bool enabled) { detail::set_simd_enabled(enabled); }

}  // namespace risk_core
