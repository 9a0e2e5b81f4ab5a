"""Prometheus metrics of one bridge, in a registry of its own (several apps may live in one process)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from streams.bus.liveness import GroupOffsets, LivenessTracker

FANOUT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class BridgeMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, tracker: LivenessTracker | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # the agents' consumer groups, looked at on every scrape (the store caches the lag a few seconds)
        self.tracker = tracker or LivenessTracker(120.0, 10_000, 60.0)
        self.consumer_lag = Gauge("algo_consumer_lag", "Messages an agent's group has not committed", ["agent"],
                                  registry=r)
        self.consumer_stalled = Gauge("algo_consumer_stalled", "1 while the group has lag and commits nothing "
                                      "for ALGO_STALL_AFTER_S", ["agent"], registry=r)
        self.consumer_lag_alarm = Gauge("algo_consumer_lag_alarm", "1 while the group's lag has stayed at or "
                                        "above ALGO_LAG_ALARM for ALGO_LAG_ALARM_AFTER_S", ["agent"], registry=r)
        self.lag_query_errors = Counter("algo_bridge_lag_query_errors", "Scrapes whose consumer-lag query failed",
                                        registry=r)
        self.requests = Counter("algo_bridge_requests", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=r)
        self.request_seconds = Histogram("algo_bridge_request_seconds", "HTTP request handling time",
                                         ["route"], registry=r)
        self.published = Counter("algo_bridge_published_messages", "Messages published to Kafka by the REST API",
                                 ["topic"], registry=r)
        self.rejected = Counter("algo_bridge_rejected_messages", "Publish requests refused (bad body, too large)",
                                ["topic", "status"], registry=r)
        self.ws_clients = Gauge("algo_bridge_websocket_clients", "Connected websocket clients", registry=r)
        self.ws_connections = Counter("algo_bridge_websocket_connections", "Websocket connections accepted",
                                      registry=r)
        self.ws_refused = Counter("algo_bridge_websocket_refused", "Websocket upgrades refused", ["reason"],
                                  registry=r)
        self.ws_dropped_clients = Counter("algo_bridge_websocket_dropped_clients",
                                          "Slow websocket clients disconnected (close code 1013)", registry=r)
        self.ws_dropped_messages = Counter("algo_bridge_websocket_dropped_messages",
                                           "Events not delivered because their client was too slow", registry=r)
        self.ws_sent = Counter("algo_bridge_websocket_sent_messages", "Websocket messages sent", registry=r)
        self.events = Counter("algo_bridge_stream_events", "Kafka messages read by the stream hub", ["topic"],
                              registry=r)
        self.decode_errors = Counter("algo_bridge_stream_decode_errors", "Kafka messages that did not decode",
                                     ["topic"], registry=r)
        self.fanout_seconds = Histogram(
            "algo_bridge_fanout_latency_seconds",
            "From the hub reading an event off Kafka to the websocket send completing, per client",
            buckets=FANOUT_BUCKETS, registry=r)

    def observe_groups(self, at: float, groups: list[dict]) -> None:
        """Lag, stall and alarm per agent from the store's consumer_lag() rows."""
        verdicts = self.tracker.observe(at, {g["agent"]: GroupOffsets(g["committed"], g["lag"]) for g in groups})
        for agent, verdict in verdicts.items():
            self.consumer_lag.labels(agent).set(verdict.lag)
            self.consumer_stalled.labels(agent).set(int(verdict.stalled))
            self.consumer_lag_alarm.labels(agent).set(int(verdict.lag_alarm))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
