# cython: language_level=3
# Declarations of the risk_core C++17 headers (include/risk_core/*.hpp), mirrored one to one.
# Every call that can throw is `except +`; everything is `nogil` (the engine never touches
# Python objects), so _engine.pyx releases the GIL around the work.
from libc.stdint cimport int64_t, uint32_t
from libcpp cimport bool
from libcpp.string cimport string
from libcpp.unordered_map cimport unordered_map
from libcpp.vector cimport vector


cdef extern from "risk_core/bars.hpp" namespace "risk_core" nogil:
    cdef cppclass BarsView:
        const double* open
        const double* high
        const double* low
        const double* close
        const double* volume
        size_t size

    void validate_bars(const BarsView& bars) except +


cdef extern from "risk_core/backtest.hpp" namespace "risk_core" nogil:
    cdef enum class Strategy(int):
        Target
        SmaCross
        Momentum
        Breakout

    cdef enum class Direction(int):
        LongShort
        LongOnly
        ShortOnly

    cdef enum class Sizing(int):
        FixedFraction
        VolTarget

    cdef cppclass BacktestConfig:
        Strategy strategy
        int fast
        int slow
        int lookback
        Direction direction
        Sizing sizing
        double fraction
        double target_vol
        int vol_window
        double max_leverage
        double fee_bps
        double slippage_bps
        double initial_capital
        double lot_size
        double periods_per_year

    cdef cppclass Trade:
        int64_t entry_bar
        int64_t exit_bar
        int64_t direction
        int64_t closed
        double quantity
        double entry_price
        double exit_price
        double pnl
        double return_pct
        double fees

    cdef cppclass Stats:
        double final_equity
        double total_return
        double annualized_return
        double volatility
        double sharpe
        double sortino
        double max_drawdown
        int64_t max_drawdown_duration
        double turnover
        double hit_rate
        int64_t num_trades
        int64_t num_fills
        double total_fees
        double exposure

    cdef cppclass BacktestOutput:
        double* equity
        double* positions
        vector[Trade]* trades

    Stats run_backtest(const BarsView& bars, const double* target, const BacktestConfig& config,
                       const BacktestOutput& out) except +
    Stats equity_stats(const double* equity, size_t n, double initial_capital,
                       double periods_per_year) except +
    void validate_config(const BacktestConfig& config) except +
    const char* simd_path()
    void set_simd(bool enabled)


cdef extern from "risk_core/sweep.hpp" namespace "risk_core" nogil:
    cdef cppclass SweepParam:
        int p1
        int p2

    cdef cppclass SweepRow:
        size_t symbol
        size_t param
        Stats stats

    vector[SweepRow] run_sweep(const vector[BarsView]& symbols, const vector[SweepParam]& params,
                               const BacktestConfig& base, unsigned threads) except +


cdef extern from "risk_core/metrics.hpp" namespace "risk_core" nogil:
    cdef cppclass DrawdownSummary:
        double max_drawdown
        int64_t max_duration
        int64_t peak_index
        int64_t trough_index

    double normal_ppf(double p) except +
    double historical_var(const double* returns, size_t n, double confidence) except +
    double historical_cvar(const double* returns, size_t n, double confidence) except +
    double parametric_var(const double* returns, size_t n, double confidence) except +
    double parametric_cvar(const double* returns, size_t n, double confidence) except +
    void rolling_volatility(const double* returns, size_t n, size_t window, double periods_per_year,
                            bool annualize, double* out) except +
    DrawdownSummary drawdown(const double* equity, size_t n, double* out) except +


cdef extern from "risk_core/pretrade.hpp" namespace "risk_core" nogil:
    cdef enum class Decision(int):
        Approve
        Resize
        Reject

    cdef cppclass RiskLimits:
        double max_position_notional
        unordered_map[string, double] symbol_position_notional
        double max_gross_exposure
        double max_net_exposure
        double max_order_notional
        int64_t max_orders_per_window
        double rate_window_seconds
        double max_daily_loss
        double max_drawdown
        double max_var
        double var_confidence
        double lot_size

    cdef cppclass Position:
        string symbol
        double quantity
        double price
        double volatility

    cdef cppclass PortfolioState:
        double cash
        vector[Position] positions
        double start_of_day_equity
        double peak_equity
        vector[double] order_timestamps

    cdef cppclass Order:
        string symbol
        int side
        double quantity
        double price
        double timestamp
        double volatility

    cdef cppclass Verdict:
        Decision decision
        double quantity
        uint32_t reasons
        double equity
        double gross_exposure
        double net_exposure
        double var

    Verdict check_order(const Order& order, const PortfolioState& portfolio,
                        const RiskLimits& limits) except +
    void validate_limits(const RiskLimits& limits) except +

    cdef cppclass RiskEngine:
        RiskEngine(const RiskLimits& limits, double cash) except +
        void set_position(const string& symbol, double quantity, double price, double volatility) except +
        void mark(const string& symbol, double price, double volatility) except +
        void on_fill(const string& symbol, double signed_quantity, double price, double fee) except +
        void set_cash(double cash) except +
        void start_day()
        void set_peak_equity(double peak) except +
        void record_order(double timestamp) except +
        Verdict check(const Order& order) except +
        Verdict submit(const Order& order) except +
        PortfolioState state()
        double equity()
        const RiskLimits& limits()
