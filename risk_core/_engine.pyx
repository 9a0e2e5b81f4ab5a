# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# distutils: language = c++
"""Thin Cython layer over the risk_core C++ engine.

numpy arrays come in as typed memoryviews (no copy: float64, C-contiguous; risk_core/__init__.py
makes sure of that), the GIL is released for the work, and results go back as numpy arrays and
the plain dataclasses of risk_core.types. Every C++ exception becomes RiskCoreError with the
engine's message.
"""
from cpython.pycapsule cimport PyCapsule_GetContext, PyCapsule_GetPointer, PyCapsule_New, PyCapsule_SetContext
from libc.stdint cimport int64_t, uint32_t, uintptr_t
from libc.stdlib cimport free
from libc.string cimport memcpy
from libcpp cimport bool
from libcpp.pair cimport pair
from libcpp.string cimport string
from libcpp.vector cimport vector

cimport numpy as cnp

import math

import numpy as np

cnp.import_array()

from risk_core import types as _t
from risk_core.errors import RiskCoreError

# C++ exceptions arrive as these (Cython's mapping of std::invalid_argument, std::out_of_range,
# std::runtime_error, ...); they are re-raised as RiskCoreError. MemoryError passes through.
_CPP_ERRORS = (ValueError, IndexError, OverflowError, ArithmeticError, RuntimeError, TypeError)

cdef double _EMPTY = 0.0  # a valid address for empty inputs (the engine reports them)

assert _t.TRADE_DTYPE.itemsize == sizeof(Trade), "TRADE_DTYPE does not match the C++ Trade struct"


cdef inline const double* _ptr(const double[::1] v):
    return &v[0] if v.shape[0] > 0 else &_EMPTY


cdef int _config(BacktestConfig* c, object cfg) except -1:
    try:
        strategy = _t.STRATEGIES.index(cfg.strategy)
    except ValueError:
        raise RiskCoreError(f"backtest config: unknown strategy {cfg.strategy!r} (one of {', '.join(_t.STRATEGIES)})") from None
    try:
        direction = _t.DIRECTIONS.index(cfg.direction)
    except ValueError:
        raise RiskCoreError(f"backtest config: unknown direction {cfg.direction!r} (one of {', '.join(_t.DIRECTIONS)})") from None
    try:
        sizing = _t.SIZINGS.index(cfg.sizing)
    except ValueError:
        raise RiskCoreError(f"backtest config: unknown sizing {cfg.sizing!r} (one of {', '.join(_t.SIZINGS)})") from None
    c.strategy = <Strategy>(<int>strategy)
    c.direction = <Direction>(<int>direction)
    c.sizing = <Sizing>(<int>sizing)
    c.fast = _int(cfg.fast, "fast")
    c.slow = _int(cfg.slow, "slow")
    c.lookback = _int(cfg.lookback, "lookback")
    c.vol_window = _int(cfg.vol_window, "vol_window")
    c.fraction = cfg.fraction
    c.target_vol = cfg.target_vol
    c.max_leverage = cfg.max_leverage
    c.fee_bps = cfg.fee_bps
    c.slippage_bps = cfg.slippage_bps
    c.initial_capital = cfg.initial_capital
    c.lot_size = cfg.lot_size
    c.periods_per_year = cfg.periods_per_year
    return 0


cdef int _int(object value, str name) except? -1:
    if value != int(value) or not (-2**31 < value < 2**31):
        raise RiskCoreError(f"backtest config: {name} must be an integer, got {value!r}")
    return <int>value


cdef object _stats(const Stats& s):
    return _t.BacktestStats(
        s.final_equity, s.total_return, s.annualized_return, s.volatility, s.sharpe, s.sortino,
        s.max_drawdown, s.max_drawdown_duration, s.turnover, s.hit_rate, s.num_trades, s.num_fills,
        s.total_fees, s.exposure,
    )


# ---- recycled output buffers -------------------------------------------------------------------
# The per-bar outputs of a long backtest are large (8 MB per output per million bars), and fresh
# memory costs more than the backtest itself: the kernel faults in and zeroes every page (about
# 1 ms per 16 MB here). Arrays of at least _POOL_MIN_BYTES therefore take their memory from a
# small pool: each array's base is a capsule that owns its buffer, and when the array and every
# view of it are gone the buffer goes back to the pool (at most _POOL_KEEP buffers are kept;
# the rest are freed), so repeated backtests reuse pages that are already mapped. The engine
# writes every element, so stale contents never show. Only touched with the GIL held.

cdef extern from "<stdlib.h>" nogil:
    void* aligned_alloc(size_t alignment, size_t size)

cdef size_t _POOL_MIN_BYTES = 1 << 20
cdef size_t _POOL_KEEP = 8
cdef vector[pair[size_t, void*]] _pool  # (capacity in bytes, buffer), most recently freed last
cdef const char* _BUFFER = b"risk_core.buffer"


cdef void _give_back(object capsule) noexcept:
    cdef void* p = PyCapsule_GetPointer(capsule, _BUFFER)
    cdef pair[size_t, void*] entry
    entry.first = <size_t><uintptr_t>PyCapsule_GetContext(capsule)
    entry.second = p
    if _pool.size() < _POOL_KEEP:
        _pool.push_back(entry)
    else:
        free(p)


cdef object _empty(size_t n):
    """np.empty(n) (float64), from the pool when it is large."""
    cdef size_t nbytes = n * sizeof(double)
    if nbytes < _POOL_MIN_BYTES:
        return np.empty(n)
    cdef void* p = NULL
    cdef size_t capacity = 0, i
    for i in reversed(range(_pool.size())):  # a buffer that fits without wasting half of it
        if nbytes <= _pool[i].first <= 2 * nbytes:
            p = _pool[i].second
            capacity = _pool[i].first
            _pool.erase(_pool.begin() + i)
            break
    if p == NULL:
        capacity = (nbytes + 63) & ~(<size_t>63)
        p = aligned_alloc(64, capacity)
        if p == NULL:
            raise MemoryError()
    try:
        owner = PyCapsule_New(p, _BUFFER, _give_back)
    except BaseException:
        free(p)
        raise
    PyCapsule_SetContext(owner, <void*><uintptr_t>capacity)
    cdef cnp.npy_intp dims[1]
    dims[0] = <cnp.npy_intp>n
    cdef cnp.ndarray arr = cnp.PyArray_SimpleNewFromData(1, dims, cnp.NPY_FLOAT64, p)
    cnp.set_array_base(arr, owner)
    return arr


def pooled_buffers():
    """(count, bytes) of the free output buffers kept for reuse."""
    cdef size_t total = 0, i
    for i in range(_pool.size()):
        total += _pool[i].first
    return _pool.size(), total


def release_buffers():
    """Frees the output buffers kept for reuse."""
    cdef size_t i
    for i in range(_pool.size()):
        free(_pool[i].second)
    _pool.clear()


def simd(enabled=None):
    """The hot loops' code path: "avx2" or "scalar". enabled=False forces the scalar code,
    True restores the CPU's choice (benchmarks, tests)."""
    if enabled is not None:
        set_simd(True if enabled else False)
    return simd_path().decode()


cdef object _trades(const vector[Trade]& trades):
    out = np.empty(trades.size(), dtype=_t.TRADE_DTYPE)
    cdef unsigned char[::1] raw
    if trades.size():
        raw = out.view(np.uint8)
        memcpy(&raw[0], trades.data(), trades.size() * sizeof(Trade))
    return out


def backtest(const double[::1] open, const double[::1] close, high, low, volume, target, config,
             bint record_equity=True, bint record_positions=True, bint record_trades=True):
    """Runs one backtest; see risk_core.backtest for the friendly signature."""
    cdef BacktestConfig cfg
    _config(&cfg, config)
    cdef size_t n = close.shape[0]
    cdef BarsView bars
    cdef const double[::1] h, l, v, tg
    if <size_t>open.shape[0] != n:
        raise RiskCoreError(f"bars: open has {open.shape[0]} values but close has {n}")
    bars.open = _ptr(open)
    bars.close = _ptr(close)
    bars.size = n
    bars.high = bars.low = bars.volume = NULL
    if high is not None:
        h = high
        if <size_t>h.shape[0] != n:
            raise RiskCoreError(f"bars: high has {h.shape[0]} values but close has {n}")
        bars.high = _ptr(h)
    if low is not None:
        l = low
        if <size_t>l.shape[0] != n:
            raise RiskCoreError(f"bars: low has {l.shape[0]} values but close has {n}")
        bars.low = _ptr(l)
    if volume is not None:
        v = volume
        if <size_t>v.shape[0] != n:
            raise RiskCoreError(f"bars: volume has {v.shape[0]} values but close has {n}")
        bars.volume = _ptr(v)
    cdef const double* tp = NULL
    if target is not None:
        tg = target
        if <size_t>tg.shape[0] != n:
            raise RiskCoreError(f"backtest: target has {tg.shape[0]} values but close has {n}")
        tp = _ptr(tg)

    cdef BacktestOutput out
    cdef double[::1] eq_v, pos_v
    cdef vector[Trade] trades
    equity = positions = None
    out.equity = out.positions = NULL
    out.trades = NULL
    if record_equity:
        equity = _empty(n)
        if n:
            eq_v = equity
            out.equity = &eq_v[0]
    if record_positions:
        positions = _empty(n)
        if n:
            pos_v = positions
            out.positions = &pos_v[0]
    if record_trades:
        out.trades = &trades
    cdef Stats st
    try:
        with nogil:
            st = run_backtest(bars, tp, cfg, out)
    except _CPP_ERRORS as e:
        raise RiskCoreError(str(e)) from None
    return _stats(st), equity, positions, (_trades(trades) if record_trades else None)


def validate(config):
    """Checks a BacktestConfig without running anything."""
    cdef BacktestConfig cfg
    _config(&cfg, config)
    try:
        validate_config(cfg)
    except _CPP_ERRORS as e:
        raise RiskCoreError(str(e)) from None


def sweep(list symbols, const int64_t[:, ::1] params, config, unsigned threads=0):
    """symbols: list of (open, high, low, close, volume) float64 arrays (high/low/volume may be
    None); params: (m, 2) int64. Returns {stat name: (len(symbols), m) array}."""
    cdef BacktestConfig cfg
    _config(&cfg, config)
    cdef vector[BarsView] views
    cdef vector[SweepParam] ps
    cdef BarsView bv
    cdef SweepParam sp
    cdef const double[::1] o, c, h, l, v
    cdef size_t i, j, m = params.shape[0], s_count = len(symbols)
    if params.shape[1] != 2:
        raise RiskCoreError("sweep: params must have two columns")
    keep = []  # the memoryviews (and so the buffers) stay alive during the call
    for i in range(s_count):
        sym = symbols[i]
        o = sym[0]
        c = sym[3]
        if o.shape[0] != c.shape[0]:
            raise RiskCoreError(f"sweep: symbol {i}: open has {o.shape[0]} values but close has {c.shape[0]}")
        bv.open = _ptr(o)
        bv.close = _ptr(c)
        bv.size = c.shape[0]
        bv.high = bv.low = bv.volume = NULL
        keep.append((o, c))
        for k, name in ((1, "high"), (2, "low"), (4, "volume")):
            if sym[k] is None:
                continue
            h = sym[k]
            if h.shape[0] != c.shape[0]:
                raise RiskCoreError(f"sweep: symbol {i}: {name} has {h.shape[0]} values but close has {c.shape[0]}")
            keep.append(h)
            if k == 1:
                bv.high = _ptr(h)
            elif k == 2:
                bv.low = _ptr(h)
            else:
                bv.volume = _ptr(h)
        views.push_back(bv)
    for j in range(m):
        if not (-2**31 < params[j, 0] < 2**31 and -2**31 < params[j, 1] < 2**31):
            raise RiskCoreError(f"sweep: parameter {j} is out of range")
        sp.p1 = <int>params[j, 0]
        sp.p2 = <int>params[j, 1]
        ps.push_back(sp)
    cdef vector[SweepRow] rows
    try:
        with nogil:
            rows = run_sweep(views, ps, cfg, threads)
    except _CPP_ERRORS as e:
        raise RiskCoreError(str(e)) from None
    cols = {name: np.empty((s_count, m), dtype=np.int64 if name in ("max_drawdown_duration", "num_trades", "num_fills") else np.float64)
            for name in _t.STAT_FIELDS}
    cdef double[:, ::1] fe = cols["final_equity"], tr = cols["total_return"], ar = cols["annualized_return"]
    cdef double[:, ::1] vo = cols["volatility"], sh = cols["sharpe"], so = cols["sortino"], md = cols["max_drawdown"]
    cdef double[:, ::1] to = cols["turnover"], hr = cols["hit_rate"], tf = cols["total_fees"], ex = cols["exposure"]
    cdef int64_t[:, ::1] dd = cols["max_drawdown_duration"], nt = cols["num_trades"], nf = cols["num_fills"]
    cdef size_t r
    for r in range(rows.size()):
        i = rows[r].symbol
        j = rows[r].param
        fe[i, j] = rows[r].stats.final_equity
        tr[i, j] = rows[r].stats.total_return
        ar[i, j] = rows[r].stats.annualized_return
        vo[i, j] = rows[r].stats.volatility
        sh[i, j] = rows[r].stats.sharpe
        so[i, j] = rows[r].stats.sortino
        md[i, j] = rows[r].stats.max_drawdown
        dd[i, j] = rows[r].stats.max_drawdown_duration
        to[i, j] = rows[r].stats.turnover
        hr[i, j] = rows[r].stats.hit_rate
        nt[i, j] = rows[r].stats.num_trades
        nf[i, j] = rows[r].stats.num_fills
        tf[i, j] = rows[r].stats.total_fees
        ex[i, j] = rows[r].stats.exposure
    return cols


def stats_of_equity(const double[::1] equity, double initial_capital, double periods_per_year):
    cdef Stats st
    cdef size_t n = equity.shape[0]
    cdef const double* p = _ptr(equity)
    try:
        with nogil:
            st = equity_stats(p, n, initial_capital, periods_per_year)
    except _CPP_ERRORS as e:
        raise RiskCoreError(str(e)) from None
    return _stats(st)


# ---- risk metrics ------------------------------------------------------------------------------

def var_cvar(const double[::1] returns, double confidence, str kind):
    cdef size_t n = returns.shape[0]
    cdef const double* p = _ptr(returns)
    cdef double out
    cdef int k = ("historical_var", "historical_cvar", "parametric_var", "parametric_cvar").index(kind)
    try:
        with nogil:
            if k == 0:
                out = historical_var(p, n, confidence)
            elif k == 1:
                out = historical_cvar(p, n, confidence)
            elif k == 2:
                out = parametric_var(p, n, confidence)
            else:
                out = parametric_cvar(p, n, confidence)
    except _CPP_ERRORS as e:
        raise RiskCoreError(str(e)) from None
    return out


def norm_ppf(double p):
    try:
        return normal_ppf(p)
    except _CPP_ERRORS as e:
        raise RiskCoreError(str(e)) from None


def rolling_vol(const double[::1] returns, Py_ssize_t window, double periods_per_year, bint annualize):
    cdef size_t n = returns.shape[0]
    if window < 0:
        raise RiskCoreError(f"rolling_volatility: window must be >= 2, got {window}")
    out = np.empty(n)
    cdef double[::1] ov = out
    cdef double* op = &ov[0] if n else &_EMPTY
    cdef const double* p = _ptr(returns)
    try:
        with nogil:
            rolling_volatility(p, n, <size_t>window, periods_per_year, annualize, op)
    except _CPP_ERRORS as e:
        raise RiskCoreError(str(e)) from None
    return out


def drawdown_of(const double[::1] equity):
    cdef size_t n = equity.shape[0]
    out = np.empty(n)
    cdef double[::1] ov = out
    cdef double* op = &ov[0] if n else &_EMPTY
    cdef const double* p = _ptr(equity)
    cdef DrawdownSummary s
    try:
        with nogil:
            s = drawdown(p, n, op)
    except _CPP_ERRORS as e:
        raise RiskCoreError(str(e)) from None
    return _t.Drawdown(out, s.max_drawdown, s.max_duration, s.peak_index, s.trough_index)


# ---- pre-trade checks --------------------------------------------------------------------------

cdef int _side(object side) except 0:
    if side == 1 or side == "buy":
        return 1
    if side == -1 or side == "sell":
        return -1
    raise RiskCoreError(f"pre-trade check: order side must be +1/'buy' or -1/'sell', got {side!r}")


cdef int _limits(RiskLimits* c, object lim) except -1:
    c.max_position_notional = lim.max_position_notional
    c.symbol_position_notional.clear()
    for sym, value in lim.symbol_position_notional.items():
        c.symbol_position_notional[(<str>sym).encode()] = value
    c.max_gross_exposure = lim.max_gross_exposure
    c.max_net_exposure = lim.max_net_exposure
    c.max_order_notional = lim.max_order_notional
    if lim.max_orders_per_window is None:
        c.max_orders_per_window = 2**63 - 1
    else:
        if lim.max_orders_per_window < 0:
            raise RiskCoreError("pre-trade check: max_orders_per_window must be >= 0")
        c.max_orders_per_window = lim.max_orders_per_window
    c.rate_window_seconds = lim.rate_window_seconds
    c.max_daily_loss = lim.max_daily_loss
    c.max_drawdown = lim.max_drawdown
    c.max_var = lim.max_var
    c.var_confidence = lim.var_confidence
    c.lot_size = lim.lot_size
    return 0


cdef inline object _verdict(const Verdict& v):
    cdef uint32_t bits = v.reasons
    reasons = tuple([name for i, name in enumerate(_t.REASONS) if bits & (1u << i)]) if bits else ()
    return _t.Verdict(_t.DECISIONS[<int>v.decision], v.quantity, reasons, v.equity, v.gross_exposure,
                      v.net_exposure, v.var)


cdef int _order(Order* o, object order) except -1:
    o.symbol = (<str>order.symbol).encode()
    o.side = _side(order.side)
    o.quantity = order.quantity
    o.price = order.price
    o.timestamp = order.timestamp
    o.volatility = -1.0 if order.volatility is None else order.volatility
    if order.volatility is not None and order.volatility < 0:
        raise RiskCoreError(f"pre-trade check: order volatility must be >= 0, got {order.volatility!r}")
    return 0


def check(order, portfolio, limits):
    """The pure check: Order, Portfolio, RiskLimits -> Verdict."""
    cdef Order o
    cdef PortfolioState pf
    cdef RiskLimits lim
    cdef Position p
    cdef Verdict v
    _order(&o, order)
    _limits(&lim, limits)
    pf.cash = portfolio.cash
    pf.start_of_day_equity = portfolio.start_of_day_equity
    pf.peak_equity = portfolio.peak_equity
    for pos in portfolio.positions:
        p.symbol = (<str>pos.symbol).encode()
        p.quantity = pos.quantity
        p.price = pos.price
        p.volatility = pos.volatility
        pf.positions.push_back(p)
    for ts in portfolio.order_timestamps:
        pf.order_timestamps.push_back(ts)
    try:
        with nogil:
            v = check_order(o, pf, lim)
    except _CPP_ERRORS as e:
        raise RiskCoreError(str(e)) from None
    return _verdict(v)


cdef class Engine:
    """The stateful pre-trade engine (C++ RiskEngine): positions, aggregates and the order-rate
    window live in C++; check() is O(1) in the number of positions."""

    cdef RiskEngine* _e
    cdef object _limits_obj

    def __cinit__(self, limits, double cash):
        cdef RiskLimits lim
        _limits(&lim, limits)
        try:
            self._e = new RiskEngine(lim, cash)
        except _CPP_ERRORS as e:
            raise RiskCoreError(str(e)) from None
        self._limits_obj = limits

    def __dealloc__(self):
        del self._e

    @property
    def limits(self):
        return self._limits_obj

    @property
    def equity(self):
        return self._e.equity()

    def set_position(self, str symbol, double quantity, double price, double volatility=-1.0):
        try:
            self._e.set_position(symbol.encode(), quantity, price, volatility)
        except _CPP_ERRORS as e:
            raise RiskCoreError(str(e)) from None

    def mark(self, str symbol, double price, double volatility=-1.0):
        try:
            self._e.mark(symbol.encode(), price, volatility)
        except _CPP_ERRORS as e:
            raise RiskCoreError(str(e)) from None

    def on_fill(self, str symbol, double signed_quantity, double price, double fee=0.0):
        try:
            self._e.on_fill(symbol.encode(), signed_quantity, price, fee)
        except _CPP_ERRORS as e:
            raise RiskCoreError(str(e)) from None

    def set_cash(self, double cash):
        try:
            self._e.set_cash(cash)
        except _CPP_ERRORS as e:
            raise RiskCoreError(str(e)) from None

    def start_day(self):
        self._e.start_day()

    def set_peak_equity(self, double peak):
        try:
            self._e.set_peak_equity(peak)
        except _CPP_ERRORS as e:
            raise RiskCoreError(str(e)) from None

    def record_order(self, double timestamp):
        try:
            self._e.record_order(timestamp)
        except _CPP_ERRORS as e:
            raise RiskCoreError(str(e)) from None

    def check(self, str symbol, side, double quantity, double price, double timestamp=0.0,
              double volatility=-1.0):
        """Checks an order without recording it. volatility < 0: the position's."""
        cdef Order o
        cdef Verdict v
        o.symbol = symbol.encode()
        o.side = _side(side)
        o.quantity = quantity
        o.price = price
        o.timestamp = timestamp
        o.volatility = volatility
        try:
            v = self._e.check(o)
        except _CPP_ERRORS as e:
            raise RiskCoreError(str(e)) from None
        return _verdict(v)

    def submit(self, str symbol, side, double quantity, double price, double timestamp=0.0,
               double volatility=-1.0):
        """check(), and unless rejected, counts the order in the rate window."""
        cdef Order o
        cdef Verdict v
        o.symbol = symbol.encode()
        o.side = _side(side)
        o.quantity = quantity
        o.price = price
        o.timestamp = timestamp
        o.volatility = volatility
        try:
            v = self._e.submit(o)
        except _CPP_ERRORS as e:
            raise RiskCoreError(str(e)) from None
        return _verdict(v)

    def check_order(self, order):
        cdef Order o
        cdef Verdict v
        _order(&o, order)
        try:
            v = self._e.check(o)
        except _CPP_ERRORS as e:
            raise RiskCoreError(str(e)) from None
        return _verdict(v)

    def state(self):
        cdef PortfolioState s = self._e.state()
        return _t.Portfolio(
            s.cash,
            [_t.Position(p.symbol.decode(), p.quantity, p.price, p.volatility) for p in s.positions],
            s.start_of_day_equity,
            s.peak_equity,
            [t for t in s.order_timestamps],
        )
