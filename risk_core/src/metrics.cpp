#include "risk_core/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "risk_core/bars.hpp"

namespace risk_core {

double normal_ppf(double p) {
    // Wichura, M. J. (1988) Algorithm AS 241: The percentage points of the normal distribution.
    if (!(p > 0.0 && p < 1.0)) {
        throw std::invalid_argument("normal_ppf: p must be in (0, 1), got " + std::to_string(p));
    }
    const double q = p - 0.5;
    if (std::fabs(q) <= 0.425) {
        const double r = 0.180625 - q * q;
        const double num = (((((((2509.0809287301226727 * r + 33430.575583588128105) * r + 67265.770927008700853) * r +
                                45921.953931549871457) * r + 13731.693765509461125) * r + 1971.5909503065514427) * r +
                              133.14166789178437745) * r + 3.387132872796366608);
        const double den = (((((((5226.495278852545925 * r + 28729.085735721942674) * r + 39307.89580009271061) * r +
                                21213.794301586595867) * r + 5394.1960214247511077) * r + 687.1870074920579083) * r +
                              42.313330701600911252) * r + 1.0);
        return q * num / den;
    }
    double r = q < 0.0 ? p : 1.0 - p;
    r = std::sqrt(-std::log(r));
    double x;
    if (r <= 5.0) {
        r -= 1.6;
        x = (((((((7.7454501427834140764e-4 * r + 0.0227238449892691845833) * r + 0.24178072517745061177) * r +
                 1.27045825245236838258) * r + 3.64784832476320460504) * r + 5.7694972214606914055) * r +
               4.6303378461565452959) * r + 1.42343711074968357734) /
            (((((((1.05075007164441684324e-9 * r + 5.475938084995344946e-4) * r + 0.0151986665636164571966) * r +
                 0.14810397642748007459) * r + 0.68976733498510000455) * r + 1.6763848301838038494) * r +
               2.05319162663775882187) * r + 1.0);
    } else {
        r -= 5.0;
        x = (((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r + 0.0012426609473880784386) * r +
                 0.026532189526576123093) * r + 0.29656057182850489123) * r + 1.7848265399172913358) * r +
               5.4637849111641143699) * r + 6.6579046435011037772) /
            (((((((2.04426310338993978564e-15 * r + 1.4215117583164458887e-7) * r + 1.8463183175100546818e-5) * r +
                 7.868691311456132591e-4) * r + 0.0148753612908506148525) * r + 0.13692988092273580531) * r +
               0.59983220655588793769) * r + 1.0);
    }
    return q < 0.0 ? -x : x;
}

namespace {

void check_returns(const double* r, std::size_t n, const char* what) {
    if (n == 0) throw std::invalid_argument(std::string(what) + ": the returns series is empty");
    require_all_finite(r, 0, n, (std::string(what) + ": returns").c_str());
}

void check_confidence(double c, const char* what) {
    if (!(c > 0.0 && c < 1.0)) {
        throw std::invalid_argument(std::string(what) + ": confidence must be in (0, 1), got " + std::to_string(c));
    }
}

// numpy.quantile(x, p, method="linear") on sorted data
double quantile_sorted(const std::vector<double>& x, double p) {
    const double h = (static_cast<double>(x.size()) - 1.0) * p;
    const double lo = std::floor(h);
    const std::size_t i = static_cast<std::size_t>(lo);
    if (i + 1 >= x.size()) return x.back();
    const double frac = h - lo;
    const double diff = x[i + 1] - x[i];
    // numpy's _lerp: from the nearer end, so rounding (denormals included) matches it bit for bit
    return frac >= 0.5 ? x[i + 1] - diff * (1.0 - frac) : x[i] + diff * frac;
}

void mean_sd(const double* r, std::size_t n, double& mean, double& sd) {
    double sum = 0.0;
    for (std::size_t i = 0; i < n; ++i) sum += r[i];
    mean = sum / static_cast<double>(n);
    double ss = 0.0;
    for (std::size_t i = 0; i < n; ++i) ss += (r[i] - mean) * (r[i] - mean);
    sd = n > 1 ? std::sqrt(ss / static_cast<double>(n - 1)) : 0.0;
}

constexpr double kInvSqrt2Pi = 0.398942280401432677939946059934;

}  // namespace

double historical_var(const double* returns, std::size_t n, double confidence) {
    check_returns(returns, n, "historical_var");
    check_confidence(confidence, "historical_var");
    std::vector<double> x(returns, returns + n);
    std::sort(x.begin(), x.end());
    return -quantile_sorted(x, 1.0 - confidence);
}

double historical_cvar(const double* returns, std::size_t n, double confidence) {
    check_returns(returns, n, "historical_cvar");
    check_confidence(confidence, "historical_cvar");
    std::vector<double> x(returns, returns + n);
    std::sort(x.begin(), x.end());
    const double q = quantile_sorted(x, 1.0 - confidence);
    double sum = 0.0;
    std::size_t k = 0;
    for (; k < x.size() && x[k] <= q; ++k) sum += x[k];
    return -(sum / static_cast<double>(k));  // k >= 1: x[0] <= q always
}

double parametric_var(const double* returns, std::size_t n, double confidence) {
    check_returns(returns, n, "parametric_var");
    check_confidence(confidence, "parametric_var");
    double mean, sd;
    mean_sd(returns, n, mean, sd);
    return -(mean + sd * normal_ppf(1.0 - confidence));
}

double parametric_cvar(const double* returns, std::size_t n, double confidence) {
    check_returns(returns, n, "parametric_cvar");
    check_confidence(confidence, "parametric_cvar");
    double mean, sd;
    mean_sd(returns, n, mean, sd);
    const double z = normal_ppf(1.0 - confidence);
    const double pdf = kInvSqrt2Pi * std::exp(-0.5 * z * z);
    return -(mean - sd * pdf / (1.0 - confidence));
}

void rolling_volatility(const double* returns, std::size_t n, std::size_t window, double periods_per_year,
                        bool annualize, double* out) {
    check_returns(returns, n, "rolling_volatility");
    if (window < 2) throw std::invalid_argument("rolling_volatility: window must be >= 2, got " + std::to_string(window));
    if (annualize && (!(periods_per_year > 0.0) || !std::isfinite(periods_per_year))) {
        throw std::invalid_argument("rolling_volatility: periods_per_year must be finite and > 0");
    }
    const double scale = annualize ? std::sqrt(periods_per_year) : 1.0;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (std::size_t t = 0; t < n; ++t) {
        if (t + 1 < window) {
            out[t] = nan;
            continue;
        }
        double mean, sd;
        mean_sd(returns + (t + 1 - window), window, mean, sd);
        out[t] = sd * scale;
    }
}

DrawdownSummary drawdown(const double* equity, std::size_t n, double* out) {
    if (n == 0) throw std::invalid_argument("drawdown: the equity series is empty");
    for (std::size_t i = 0; i < n; ++i) {
        if (!(equity[i] > 0.0) || !std::isfinite(equity[i])) {
            throw std::invalid_argument("drawdown: equity must be finite and > 0, got " + std::to_string(equity[i]) +
                                        " at index " + std::to_string(i));
        }
    }
    DrawdownSummary s;
    double peak = equity[0];
    std::int64_t peak_at = 0, run = 0;
    for (std::size_t t = 0; t < n; ++t) {
        if (equity[t] >= peak) {
            peak = equity[t];
            peak_at = static_cast<std::int64_t>(t);
            run = 0;
        } else {
            ++run;
            s.max_duration = std::max(s.max_duration, run);
        }
        const double dd = 1.0 - equity[t] / peak;
        if (out) out[t] = dd;
        if (dd > s.max_drawdown) {
            s.max_drawdown = dd;
            s.peak_index = peak_at;
            s.trough_index = static_cast<std::int64_t>(t);
        }
    }
    return s;
}

}  // namespace risk_core
