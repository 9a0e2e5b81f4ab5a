#include "risk_core/sweep.hpp"

#include <atomic>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "internal.hpp"

namespace risk_core {

namespace {

BacktestConfig config_for(const BacktestConfig& base, const SweepParam& p) {
    BacktestConfig c = base;
    if (base.strategy == Strategy::SmaCross) {
        c.fast = p.p1;
        c.slow = p.p2;
    } else {
        c.lookback = p.p1;
    }
    return c;
}

}  // namespace

std::vector<SweepRow> run_sweep(const std::vector<BarsView>& symbols, const std::vector<SweepParam>& params,
                                const BacktestConfig& base, unsigned threads) {
    if (symbols.empty()) throw std::invalid_argument("sweep: no symbols");
    if (params.empty()) throw std::invalid_argument("sweep: no parameters");
    if (base.strategy == Strategy::Target) throw std::invalid_argument("sweep: strategy 'target' cannot be swept");
    for (std::size_t s = 0; s < symbols.size(); ++s) {
        try {
            validate_bars(symbols[s]);
        } catch (const std::invalid_argument& e) {
            throw std::invalid_argument("sweep: symbol " + std::to_string(s) + ": " + e.what());
        }
    }
    for (std::size_t i = 0; i < params.size(); ++i) {
        try {
            validate_config(config_for(base, params[i]));
        } catch (const std::invalid_argument& e) {
            throw std::invalid_argument("sweep: parameter " + std::to_string(i) + " (" + std::to_string(params[i].p1) +
                                        ", " + std::to_string(params[i].p2) + "): " + e.what());
        }
    }

    const std::size_t total = symbols.size() * params.size();
    std::vector<SweepRow> rows(total);
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    if (threads > total) threads = static_cast<unsigned>(total);

    std::atomic<std::size_t> next{0};
    std::exception_ptr error;
    std::mutex error_mutex;
    auto worker = [&]() {
        try {
            const BacktestOutput none{};
            for (std::size_t i = next.fetch_add(1); i < total; i = next.fetch_add(1)) {
                const std::size_t s = i / params.size(), p = i % params.size();
                rows[i].symbol = s;
                rows[i].param = p;
                rows[i].stats = detail::run_validated(symbols[s], nullptr, config_for(base, params[p]), none);
            }
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mutex);
            if (!error) error = std::current_exception();
        }
    };
    if (threads <= 1) {
        worker();
    } else {
        std::vector<std::thread> pool;
        pool.reserve(threads - 1);
        for (unsigned t = 0; t + 1 < threads; ++t) pool.emplace_back(worker);
        worker();
        for (auto& th : pool) th.join();
    }
    if (error) std::rethrow_exception(error);
    return rows;
}

}  // namespace risk_core
