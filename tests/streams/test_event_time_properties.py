"""Event time (issue 12): whatever order the events arrive in, within the order the bus keeps (each
producer's messages on a symbol in order) and the lateness bound the barriers guarantee, the
consensus decides the same and the risk agent judges and trades the same."""
from datetime import timedelta

from hypothesis import HealthCheck, given, settings, strategies as st

from streams.bus.ids import derived_id
from streams.consensus import event_time
from streams.market.bars import to_micros
from streams.risk import sequencer
from streams.settings import BrokerSettings, ConsensusRules, RiskSettings
from tests import fixtures

RULES, RISK, BROKER = ConsensusRules(), RiskSettings(), BrokerSettings()
BAR0 = fixtures.T0.replace(hour=0, minute=0)
DAY_US = 86_400_000_000
FAR = 2**62
SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN")
ACTIONS = ("BUY", "SELL", "HOLD")
ORDERS = 4  # arrival orders tried per example
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RISK_PROPERTY = settings(PROPERTY, max_examples=100)


def day(i):
    return BAR0 + timedelta(days=i)


def interleave(streams: dict, rng, can_take=lambda key, head: True):
    """Yields (key, item) taking the streams' items in their own order, the next stream at random
    among those whose head `can_take`."""
    streams = {key: list(items) for key, items in streams.items() if items}
    while streams:
        keys = sorted(key for key, items in streams.items() if can_take(key, items[0]))
        key = rng.choice(keys)
        item = streams[key].pop(0)
        if not streams[key]:
            del streams[key]
        yield key, item


# consensus -------------------------------------------------------------------------------------------------


def bar_signal(agent, symbol, i, action, confidence):
    ts = day(i)
    return fixtures.signal(signal_id=derived_id("signal", agent, symbol, "1d", ts, "prop"), agent=agent,
                           symbol=symbol, ts=ts, action=action, confidence=confidence)


votes = st.tuples(st.sampled_from(ACTIONS), st.floats(0.0, 1.0))


@st.composite
def consensus_scenarios(draw):
    """Per symbol: its bars, technical votes on every bar, quant votes from a warm-up bar on (none
    when the warm-up is the length) and a few analyst news votes at any time."""
    scenario = {}
    for symbol in SYMBOLS[:draw(st.integers(1, 3))]:
        n = draw(st.integers(1, 7))
        closes = draw(st.lists(st.floats(10.0, 500.0), min_size=n, max_size=n))
        technical = draw(st.lists(votes, min_size=n, max_size=n))
        warmup = draw(st.integers(0, n))
        quant = draw(st.lists(votes, min_size=n - warmup, max_size=n - warmup))
        news = draw(st.lists(st.tuples(st.integers(-2 * DAY_US, n * DAY_US), votes), max_size=3))
        news_signals = sorted((fixtures.signal(signal_id=derived_id("signal", "analyst", symbol, k), agent="analyst",
                                               symbol=symbol, ts=day(0) + timedelta(microseconds=at), action=a,
                                               confidence=c) for k, (at, (a, c)) in enumerate(news)),
                              key=lambda s: (s["ts"], s["signal_id"]))
        scenario[symbol] = {
            "bars": [fixtures.bar(symbol=symbol, ts=day(i), open=close, close=close) for i, close in enumerate(closes)],
            "technical": [bar_signal("technical", symbol, i, a, c) for i, (a, c) in enumerate(technical)],
            "quant": [bar_signal("quant", symbol, warmup + i, a, c) for i, (a, c) in enumerate(quant)],
            "analyst": news_signals,
            "quant_votes": bool(quant),
        }
    return scenario


def run_consensus(scenario, rng) -> dict:
    """Each symbol's decisions for one arrival order, deciding after every event; news is cleared
    (at random moments) only up to a time whose news votes have all been delivered."""
    states = {symbol: None for symbol in scenario}
    decisions = {symbol: [] for symbol in scenario}
    news_left = {symbol: [to_micros(s["ts"]) for s in parts["analyst"]] for symbol, parts in scenario.items()}
    streams = {(symbol, kind): parts[kind] for symbol, parts in scenario.items()
               for kind in ("bars", "technical", "quant", "analyst")}
    for (symbol, kind), record in interleave(streams, rng):
        if kind == "bars":
            state = event_time.on_bar(states[symbol], record)
        else:
            state, late = event_time.on_vote(states[symbol], record, RULES)
            assert not late  # every bar-driven agent is waited for, and news is cleared only once delivered
            if kind == "analyst":
                news_left[symbol].remove(to_micros(record["ts"]))
        if rng.random() < 0.4:
            bound = min(news_left[symbol], default=FAR) - 1
            times = [to_micros(b["ts"]) for b in scenario[symbol]["bars"] if to_micros(b["ts"]) <= bound]
            state = event_time.clear_news(state, rng.choice(times + [min(bound, FAR // 2)]))
        states[symbol], made = event_time.decide_ready(state, symbol, RULES)
        decisions[symbol] += made
    for symbol in scenario:
        states[symbol], made = event_time.decide_ready(event_time.clear_news(states[symbol], FAR), symbol, RULES)
        decisions[symbol] += made
    return decisions


@PROPERTY
@given(consensus_scenarios(), st.randoms(use_true_random=False))
def test_the_consensus_decides_the_same_in_any_arrival_order(scenario, rng):
    first = run_consensus(scenario, rng)
    for symbol, parts in scenario.items():
        bars = [b["ts"] for b in parts["bars"]]
        # every bar once, in order (with no quant vote at all, quant is waited for on every bar)
        assert [d["ts"] for d in first[symbol]] == (bars if parts["quant_votes"] else [])
    for _ in range(ORDERS - 1):
        assert run_consensus(scenario, rng) == first


# risk ------------------------------------------------------------------------------------------------------


moves = st.tuples(st.floats(-0.02, 0.02), st.floats(-0.05, 0.05))  # (gap to the open, open to close)
stances = st.tuples(st.sampled_from(ACTIONS), st.sampled_from([0.05, 0.1, 0.15, 0.2, 0.3]))


@st.composite
def risk_scenarios(draw):
    """Per symbol: its bars over part of the days (some start later or stop earlier) and one
    decision per bar; plus the horizon moves, rising."""
    days = draw(st.integers(2, 8))
    scenario = {"symbols": {}}
    for k, symbol in enumerate(SYMBOLS[:draw(st.integers(2, 4))]):
        first = 0 if k == 0 else draw(st.integers(0, days - 1))
        last = draw(st.integers(first, days - 1))
        close, bars, decisions = draw(st.floats(20.0, 200.0)), [], []
        for i in range(first, last + 1):
            (gap, change), (action, size) = draw(moves), draw(stances)
            open_ = close * (1 + gap)
            close = open_ * (1 + change)
            bars.append((to_micros(day(i)), open_, close))
            target = {"BUY": size, "SELL": -size, "HOLD": 0.0}[action]
            vote = {"signal_id": derived_id("signal", "technical", symbol, "1d", day(i), "prop"), "agent": "technical",
                    "action": action, "confidence": size, "weight": 1.0}
            decisions.append(fixtures.decision(
                decision_id=derived_id("decision", symbol, day(i), vote["signal_id"]), symbol=symbol, ts=day(i),
                action=action, target_position=target, votes=[vote]))
        scenario["symbols"][symbol] = {"bars": bars, "decisions": decisions}
    times = sorted({t for parts in scenario["symbols"].values() for t, _, _ in parts["bars"]})
    scenario["horizons"] = sorted(draw(st.sets(st.sampled_from(times)))) + [FAR]
    return scenario


def run_risk(scenario, rng):
    """(verdicts by decision id, orders by id, the book) for one arrival order, judging after every
    event; a horizon H arrives only once every bar before H of every symbol has."""
    state, pending, history = sequencer.new_state(RISK), {}, sequencer.BarHistory()
    verdicts, orders, delivered = {}, {}, set()
    all_bars = {(symbol, t) for symbol, parts in scenario["symbols"].items() for t, _, _ in parts["bars"]}
    streams = {(symbol, kind): parts[kind] for symbol, parts in scenario["symbols"].items()
               for kind in ("bars", "decisions")}
    streams["horizon", "horizon"] = scenario["horizons"]

    def can_take(key, head):
        return key[0] != "horizon" or all((s, t) in delivered for s, t in all_bars if t < head)

    for (symbol, kind), item in interleave(streams, rng, can_take):
        if kind == "bars":
            history.add(symbol, *item)
            delivered.add((symbol, item[0]))
        elif kind == "decisions":
            assert not sequencer.is_judged(state, item["decision_id"])
            pending[item["decision_id"]] = sequencer.pending_entry(item)
        else:
            assert state["horizon_us"] is None or item > state["horizon_us"]
            state = {**state, "horizon_us": item}
        state, judged = sequencer.judge_ready(state, pending, history, RISK, BROKER)
        for verdict, order in judged:
            assert verdict["decision_id"] not in verdicts
            verdicts[verdict["decision_id"]] = verdict
            if order is not None:
                orders[order["order_id"]] = order
    assert pending == {}  # every decision judged once everything has arrived
    # the recent decision ids are a set (decisions of the same moment go in either order)
    book = {**state["book"], sequencer.DECISION_IDS: sorted(state["book"][sequencer.DECISION_IDS])}
    return verdicts, orders, book, sorted(o["order_id"] for o in state["open_orders"])


@RISK_PROPERTY
@given(risk_scenarios(), st.randoms(use_true_random=False))
def test_the_risk_agent_judges_and_trades_the_same_in_any_arrival_order(scenario, rng):
    first = run_risk(scenario, rng)
    verdicts = first[0]
    assert sorted(verdicts) == sorted(d["decision_id"] for p in scenario["symbols"].values() for d in p["decisions"])
    for _ in range(ORDERS - 1):
        assert run_risk(scenario, rng) == first
