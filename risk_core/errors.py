"""The one exception type of the risk_core layer.

Every error the C++ engine raises (std::invalid_argument and friends: NaN prices, mismatched
lengths, negative sizes, empty series, out-of-range parameters) reaches Python as RiskCoreError
carrying the engine's message. It derives from AlgoError, so `algo` prints it as one line, and
from ValueError, so callers that expect the usual Python error for bad input still catch it.
"""
from __future__ import annotations

from streams.errors import AlgoError


class RiskCoreError(AlgoError, ValueError):
    """Invalid input to the risk engine, or an error inside it; the message says which."""
