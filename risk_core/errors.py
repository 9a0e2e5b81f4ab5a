"""The one exception type of the risk_core layer.

Every error the C++ engine raises (std::invalid_argument and friends: NaN prices, mismatched
lengths, negative sizes, empty series, out-of-range parameters) reaches Python as RiskCoreError
carrying the engine's message. It derives from ValueError, so callers that expect the usual Python
error for bad input catch it; risk_core sits below streams and ops and imports neither, so the
`algo` entry point (ops.cli) turns it into one line itself.
"""
from __future__ import annotations


class RiskCoreError(ValueError):
    """Invalid input to the risk engine, or an error inside it; the message says which."""
