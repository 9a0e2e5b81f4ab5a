#include "risk_core/bars.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "internal.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace risk_core {

BarsView Bars::view() const {
    const std::size_t n = close.size();
    auto check = [n](const std::vector<double>& v, const char* name) {
        if (!v.empty() && v.size() != n) {
            throw std::invalid_argument(std::string("bars: ") + name + " has " +
                                        std::to_string(v.size()) + " values but close has " +
                                        std::to_string(n));
        }
    };
    check(open, "open");
    check(high, "high");
    check(low, "low");
    check(volume, "volume");
    if (open.size() != n) {
        throw std::invalid_argument("bars: open has " + std::to_string(open.size()) +
                                    " values but close has " + std::to_string(n));
    }
    BarsView v;
    v.open = open.data();
    v.close = close.data();
    v.high = high.empty() ? nullptr : high.data();
    v.low = low.empty() ? nullptr : low.data();
    v.volume = volume.empty() ? nullptr : volume.data();
    v.size = n;
    return v;
}

void require_finite(double value, const char* what, std::size_t index) {
    if (!std::isfinite(value)) {
        throw std::invalid_argument(std::string(what) + " is not finite (" + std::to_string(value) +
                                    ") at index " + std::to_string(index));
    }
}

namespace {

// true when every value is > 0 and finite (NaN fails both comparisons)
bool all_positive_finite(const double* p, std::size_t n) {
    std::size_t i = 0;
    bool ok = true;
#if defined(__SSE2__)
    const __m128d zero = _mm_setzero_pd(), inf = _mm_set1_pd(HUGE_VAL);
    __m128d m0 = _mm_cmpeq_pd(zero, zero), m1 = m0;
    for (; i + 4 <= n; i += 4) {
        const __m128d x0 = _mm_loadu_pd(p + i), x1 = _mm_loadu_pd(p + i + 2);
        m0 = _mm_and_pd(m0, _mm_and_pd(_mm_cmpgt_pd(x0, zero), _mm_cmplt_pd(x0, inf)));
        m1 = _mm_and_pd(m1, _mm_and_pd(_mm_cmpgt_pd(x1, zero), _mm_cmplt_pd(x1, inf)));
    }
    ok = _mm_movemask_pd(_mm_and_pd(m0, m1)) == 3;
#endif
    for (; i < n; ++i) ok &= (p[i] > 0.0) & (p[i] < HUGE_VAL);
    return ok;
}

// true when every value is finite
bool all_finite(const double* p, std::size_t n) {
    std::size_t i = 0;
    bool ok = true;
#if defined(__SSE2__)
    const __m128d inf = _mm_set1_pd(HUGE_VAL);
    const __m128d sign = _mm_set1_pd(-0.0);
    __m128d m0 = _mm_cmpeq_pd(inf, inf), m1 = m0;
    for (; i + 4 <= n; i += 4) {
        const __m128d x0 = _mm_andnot_pd(sign, _mm_loadu_pd(p + i));
        const __m128d x1 = _mm_andnot_pd(sign, _mm_loadu_pd(p + i + 2));
        m0 = _mm_and_pd(m0, _mm_cmplt_pd(x0, inf));
        m1 = _mm_and_pd(m1, _mm_cmplt_pd(x1, inf));
    }
    ok = _mm_movemask_pd(_mm_and_pd(m0, m1)) == 3;
#endif
    for (; i < n; ++i) ok &= std::fabs(p[i]) < HUGE_VAL;
    return ok;
}

void check_prices(const double* p, std::size_t a, std::size_t n, const char* name) {
    // Branch-free pass first (vectorised); the slow pass only runs to name the bad bar.
    if (detail::simd_enabled() ? detail::all_positive_finite_avx2(p + a, n) : all_positive_finite(p + a, n)) return;
    for (std::size_t i = a; i < a + n; ++i) {
        const double x = p[i];
        if (!(x > 0.0) || x == HUGE_VAL) {
            throw std::invalid_argument(std::string("bars: ") + name + " must be finite and > 0, got " +
                                        std::to_string(x) + " at bar " + std::to_string(i));
        }
    }
}

}  // namespace

void require_all_finite(const double* values, std::size_t a, std::size_t n, const char* what) {
    if (all_finite(values + a, n)) return;
    for (std::size_t i = a; i < a + n; ++i) require_finite(values[i], what, i);
}

void validate_range(const BarsView& bars, std::size_t a, std::size_t k) {
    check_prices(bars.open, a, k, "open");
    check_prices(bars.close, a, k, "close");
    if (bars.high) check_prices(bars.high, a, k, "high");
    if (bars.low) check_prices(bars.low, a, k, "low");
    const bool simd = detail::simd_enabled();
    if (bars.high && bars.low) {
        const double* h = bars.high + a;
        const double* l = bars.low + a;
        bool ok = true;
        if (simd) {
            ok = detail::all_ge_avx2(h, l, k);
        } else {
            for (std::size_t i = 0; i < k; ++i) ok &= h[i] >= l[i];
        }
        for (std::size_t i = a; !ok && i < a + k; ++i) {
            if (bars.high[i] < bars.low[i]) {
                throw std::invalid_argument("bars: high < low (" + std::to_string(bars.high[i]) + " < " +
                                            std::to_string(bars.low[i]) + ") at bar " + std::to_string(i));
            }
        }
    }
    if (bars.volume) {
        const double* v = bars.volume + a;
        bool ok = true;
        if (simd) {
            ok = detail::all_nonnegative_finite_avx2(v, k);
        } else {
            for (std::size_t i = 0; i < k; ++i) ok &= (v[i] >= 0.0) & (v[i] < HUGE_VAL);
        }
        for (std::size_t i = a; !ok && i < a + k; ++i) {
            const double x = bars.volume[i];
            if (!(x >= 0.0) || x == HUGE_VAL) {
                throw std::invalid_argument("bars: volume must be finite and >= 0, got " + std::to_string(x) +
                                            " at bar " + std::to_string(i));
            }
        }
    }
}

void validate_bars(const BarsView& bars) {
    if (bars.size == 0) throw std::invalid_argument("bars: the series is empty");
    if (bars.open == nullptr || bars.close == nullptr) {
        throw std::invalid_argument("bars: open and close are required");
    }
    validate_range(bars, 0, bars.size);
}

}  // namespace risk_core
