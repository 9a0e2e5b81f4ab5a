"""In-memory stand-ins for the bridge's Kafka publisher and Postgres store (unit tests only)."""
from __future__ import annotations

from streams.bridge.publish import Delivered, PublishUnavailable
from streams.bridge.store import StoreUnavailable


class FakePublisher:
    def __init__(self, fail: bool = False) -> None:
        self.published: list[tuple[str, str, dict]] = []
        self.fail = fail

    async def publish(self, topic: str, items: list[tuple[str, dict]]) -> list[Delivered]:
        if self.fail:
            raise PublishUnavailable("broker down")
        out = []
        for key, record in items:
            self.published.append((topic, key, record))
            out.append(Delivered(key, 0, len(self.published) - 1))
        return out

    async def close(self) -> None:
        pass


class FakeStore:
    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.calls: list[tuple] = []

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def _check(self, *call) -> None:
        self.calls.append(call)
        if self.down:
            raise StoreUnavailable("Postgres: connection refused")

    async def ping(self) -> None:
        self._check("ping")

    def kafka_ping(self, timeout: float = 3.0) -> int:
        if self.down:
            raise RuntimeError("no brokers")
        return 1

    async def decisions(self, symbol, limit):
        self._check("decisions", symbol, limit)
        return [{"decision_id": "d1", "symbol": symbol or "AAPL", "ts": "2013-03-01T00:00:00+00:00", "action": "BUY",
                 "target_position": 0.5, "agreement": 1.0, "rationale": "r", "verdict": None,
                 "approved_quantity": None, "reason_codes": None,
                 "votes": [{"agent": "technical", "action": "BUY", "confidence": 0.7, "weight": 1.0, "signal_id": "s"}]}]

    async def bars(self, symbol, interval, limit):
        self._check("bars", symbol, interval, limit)
        return []

    async def positions(self, account):
        self._check("positions", account)
        return []

    async def accounts(self, account):
        self._check("accounts", account)
        return [{"account": "paper", "cash": 10.0, "equity": 12.0, "realised_pnl": 1.0, "unrealised_pnl": 1.0,
                 "fees": 0.5, "gross_exposure": 0.1, "net_exposure": 0.1, "updated_at": None}]

    async def fills(self, symbol, account, limit):
        self._check("fills", symbol, account, limit)
        return []

    async def agents(self):
        self._check("agents")
        return [{"agent": "technical", "configured_weight": 1.0, "hit_rate": None, "scored_calls": 0, "signals": 0,
                 "last_signal_at": None, "updated_at": None, "last_signal_ts": None, "signal_rows": 0}]

    async def consumer_lag(self):
        self._check("lag")
        return [{"group": "algo-technical", "agent": "technical", "state": "stable", "lag": 3, "topics": {"market.bars": 3},
                 "committed": 10}]

    async def news(self, symbol, since, until, limit):
        self._check("news", symbol, since, until, limit)
        return [{"id": "n1", "ts": "2013-03-01T00:00:00+00:00", "source": "wire", "headline": "Apple beats",
                 "body": "", "url": None, "symbols": [symbol or "AAPL"]}]

    async def analyst_votes(self, symbol, limit):
        self._check("analyst_votes", symbol, limit)
        return [{"signal_id": "s1", "symbol": symbol or "AAPL", "ts": "2013-03-01T00:00:00+00:00", "action": "BUY",
                 "confidence": 0.7, "rationale": "positive: 'Apple beats'", "model_version": "analyst-1",
                 "cited": [{"id": "n1", "ts": "2013-03-01T00:00:00+00:00", "source": "wire",
                            "headline": "Apple beats", "url": None}]}]
