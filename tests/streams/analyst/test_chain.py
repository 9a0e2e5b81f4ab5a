"""The chain's decision logic and its LCEL plumbing, with a stub scorer and LangChain's fake chat models
(the real scorer, Postgres and the agent are covered by test_scorer, test_memory and test_agents)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import numpy as np
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from streams.analyst import chain
from streams.analyst.chain import AnalystError, ChainParts, ContextItem, VoteInputs
from streams.settings import AnalystSettings

T = datetime(2007, 1, 9, 17, 0, tzinfo=timezone.utc)
T_US = int(T.timestamp() * 1e6)
DAY_US = 86_400 * 1_000_000
RULES = AnalystSettings()


@dataclass(frozen=True)
class StubScore:
    label: str
    confidence: float
    polarity: float


class StubScorer:
    """Polarity = the embedding's first component: the test decides each item's sentiment."""
    version = "stub-1"

    def score_features(self, embeddings, texts):
        assert len(embeddings) == len(texts)
        out = []
        for row in embeddings:
            p = float(row[0])
            out.append(StubScore("positive" if p > 0 else "negative" if p < 0 else "neutral", abs(p), p))
        return out


def vec(polarity: float) -> np.ndarray:
    v = np.zeros(384, dtype=np.float32)
    v[0] = polarity
    return v


def inputs(context=(), **overrides) -> VoteInputs:
    fields = dict(news_id="n-new", symbol="AAPL", ts_us=T_US, headline="Apple unveils the iPhone",
                  text="Apple unveils the iPhone. It combines a phone and an iPod.",
                  context=tuple(context), context_texts=tuple(f"text {c.id}" for c in context))
    fields.update(overrides)
    return VoteInputs(**fields)


def item(c_id: str, days_before: float, similarity: float = 0.5) -> ContextItem:
    return ContextItem(id=c_id, ts_us=T_US - int(days_before * DAY_US), headline=f"headline {c_id}", similarity=similarity)


def test_a_positive_item_alone_buys_and_a_negative_one_sells():
    buy = chain.decide(inputs(), vec(0.8), np.zeros((0, 384), np.float32), StubScorer(), RULES)
    sell = chain.decide(inputs(), vec(-0.6), np.zeros((0, 384), np.float32), StubScorer(), RULES)
    hold = chain.decide(inputs(), vec(0.05), np.zeros((0, 384), np.float32), StubScorer(), RULES)
    assert (buy.action, buy.confidence) == ("BUY", pytest.approx(0.8))
    assert (sell.action, sell.confidence) == ("SELL", pytest.approx(0.6))
    assert hold.action == "HOLD" and hold.confidence == pytest.approx(1 - 0.05 / RULES.min_polarity)


def test_context_counts_with_a_weight_that_halves_every_half_life():
    context = [item("old", 2.0), item("older", 4.0)]  # half_life 2 days: weights 0.5 and 0.25
    vote = chain.decide(inputs(context), vec(0.2), np.vstack([vec(-1.0), vec(-1.0)]), StubScorer(), RULES)
    assert vote.context_weights == pytest.approx((0.5, 0.25))
    assert vote.aggregate == pytest.approx((0.2 - 0.5 - 0.25) / 1.75)
    assert vote.action == "SELL"  # the earlier bad news outweighs a mildly good item


def test_a_repeat_of_an_earlier_item_barely_counts():
    context = [item("same", 1.0, similarity=0.97)]
    vote = chain.decide(inputs(context), vec(1.0), vec(0.0).reshape(1, -1), StubScorer(), RULES)
    assert vote.item_weight == chain.DUPLICATE_WEIGHT
    fresh = chain.decide(inputs([item("other", 1.0, similarity=0.5)]), vec(1.0), vec(0.0).reshape(1, -1),
                         StubScorer(), RULES)
    assert fresh.item_weight == 1.0 and fresh.aggregate > vote.aggregate


def test_decide_is_a_function_of_its_inputs():
    context = [item("a", 0.5), item("b", 3.0)]
    embeddings = np.vstack([vec(0.3), vec(-0.2)])
    first = chain.decide(inputs(context), vec(0.4), embeddings, StubScorer(), RULES)
    again = chain.decide(inputs(context), vec(0.4).copy(), embeddings.copy(), StubScorer(), RULES)
    assert first == again


def test_the_signal_quotes_its_headlines_and_cites_every_input():
    context = [item("a", 0.5), item("b", 3.0)]
    i = inputs(context)
    vote = chain.decide(i, vec(0.9), np.vstack([vec(0.3), vec(0.2)]), StubScorer(), RULES)
    signal = chain.signal_record(i, vote, "v1")
    assert signal["agent"] == "analyst" and signal["ts"] == T
    assert signal["input_refs"] == ["news:n-new", "news:a", "news:b"]
    assert '"Apple unveils the iPhone"' in signal["rationale"] and '"headline a"' in signal["rationale"]
    assert signal["signal_id"] == chain.signal_record(i, vote, "v1")["signal_id"]  # derived, not random
    assert signal["signal_id"] != chain.signal_record(inputs(context, symbol="MSFT"), vote, "v1")["signal_id"]


def test_a_vote_record_round_trips_through_json_and_re_derives_the_same_vote():
    context = [item("a", 0.5), item("b", 3.0)]
    i = inputs(context)
    embeddings = np.vstack([vec(0.3), vec(-0.7)])
    vote = chain.decide(i, vec(0.1), embeddings, StubScorer(), RULES)
    signal = chain.signal_record(i, vote, "v1")
    record = json.loads(chain.log_record(chain.vote_record(i, vote, signal, RULES, {"scorer": "stub-1"}))
                        ["context"]["record"])
    again = chain.decide(chain.inputs_from_record(record), vec(0.1), embeddings, StubScorer(),
                         chain.rules_from_record(record))
    assert again == vote
    assert record["signal"]["action"] == vote.action


def judgement(**overrides) -> str:
    answer = {"sentiment": "negative", "confidence": 0.9, "cited_ids": ["a", "made-up"], "reason": "a recall"}
    answer.update(overrides)
    return json.dumps(answer)


def test_an_llm_judgement_replaces_the_new_items_score_and_keeps_only_real_citations():
    context = [item("a", 0.5)]
    i = inputs(context, llm_raw=judgement(), llm_model="openai:test")
    vote = chain.decide(i, vec(0.9), vec(0.0).reshape(1, -1), StubScorer(), RULES)
    assert vote.item_sentiment == pytest.approx(-0.9) and vote.action == "SELL"
    assert vote.cited_ids == ("a",)  # "made-up" was never shown to the model
    assert vote.judged_by == "openai:test" and vote.reason == "a recall"


def test_a_malformed_llm_answer_is_refused_with_a_clear_error():
    with pytest.raises(AnalystError, match="not a valid judgement"):
        chain.llm_judgement('{"sentiment": "bullish", "confidence": 2}')
    judge = chain.build_judge(GenericFakeChatModel(messages=iter([AIMessage(content="I think it is good")])))
    with pytest.raises(AnalystError):
        judge.invoke(chain.judge_prompt_values(inputs()))


def test_the_judge_sends_the_context_and_returns_the_raw_answer():
    seen = []

    class Recording(GenericFakeChatModel):
        def _generate(self, messages, *args, **kwargs):
            seen.append(messages)
            return super()._generate(messages, *args, **kwargs)

    answer = "```json\n" + judgement(sentiment="positive") + "\n```"
    judge = chain.build_judge(Recording(messages=iter([AIMessage(content=answer)])))
    raw = judge.invoke(chain.judge_prompt_values(inputs([item("a", 0.5)])))
    assert raw == answer and chain.llm_judgement(raw).sentiment == "positive"
    human = seen[0][-1].content
    assert "headline a" in human and "a | 2007-01-09" in human and "AAPL" in human


def _parts(judge=None, symbols=("AAPL",), rows=()):
    retrieved = []

    def retrieve(news, embedding, symbol):
        retrieved.append((news["id"], symbol))
        return list(rows)

    return ChainParts(resolve=lambda news: SimpleNamespace(symbols=list(symbols), unknown_declared=[]),
                      retrieve=retrieve, scorer=StubScorer(), rules=RULES, judge=judge,
                      llm_model="fake" if judge else None), retrieved


def news(**overrides) -> dict:
    record = {"id": "n-new", "ts": T, "source": "test", "headline": "Apple unveils the iPhone",
              "body": "It combines a phone and an iPod.", "symbols": ["AAPL"], "url": None}
    record.update(overrides)
    return record


def row(r_id: str, days_before: float, polarity: float):
    return SimpleNamespace(id=r_id, ts=T - timedelta(days=days_before), headline=f"headline {r_id}", body="",
                           similarity=0.4, embedding=vec(polarity))


def test_the_lcel_chain_runs_resolve_retrieve_score_aggregate_vote_per_symbol():
    parts, retrieved = _parts(symbols=("AAPL", "MSFT"), rows=[row("a", 1.0, -0.5)])
    state = chain.build_chain(parts).invoke({"item": news(), "ts_us": T_US, "embedding": vec(0.6)})
    assert retrieved == [("n-new", "AAPL"), ("n-new", "MSFT")]
    assert set(state["votes"]) == {"AAPL", "MSFT"}
    inputs_, vote = state["votes"]["AAPL"]
    assert inputs_.context[0].id == "a" and inputs_.text.startswith("Apple unveils the iPhone")
    assert vote.aggregate == pytest.approx((0.6 - 0.5 * 0.5 ** 0.5) / (1 + 0.5 ** 0.5))


def test_an_item_naming_no_known_company_gives_no_vote():
    parts, retrieved = _parts(symbols=())
    state = chain.build_chain(parts).invoke({"item": news(), "ts_us": T_US, "embedding": vec(0.6)})
    assert state["votes"] == {} and retrieved == []
    note = chain.unknown_company_log(news(), T, ["NOK"])
    assert note["level"] == "WARNING" and "not voted on" in note["message"] and "NOK" in note["message"]


def test_with_an_llm_the_chain_records_its_raw_answer():
    answer = judgement(sentiment="positive", confidence=0.7, cited_ids=["a"])
    parts, _ = _parts(judge=chain.build_judge(GenericFakeChatModel(messages=iter([AIMessage(content=answer)]))),
                      rows=[row("a", 1.0, 0.0)])
    state = chain.build_chain(parts).invoke({"item": news(), "ts_us": T_US, "embedding": vec(-0.9)})
    inputs_, vote = state["votes"]["AAPL"]
    assert inputs_.llm_raw == answer and inputs_.llm_model == "fake"
    assert vote.item_sentiment == pytest.approx(0.7) and vote.cited_ids == ("a",)


def test_chat_model_refuses_a_spec_it_does_not_know():
    with pytest.raises(AnalystError, match="openai:<model>"):
        chain.chat_model(AnalystSettings(llm="nope:x"))
    model = chain.chat_model(AnalystSettings(llm="openai:my-model", llm_base_url="http://127.0.0.1:9/v1"))
    assert model.model_name == "my-model"


def test_the_openai_path_talks_to_any_openai_compatible_server():
    """ANALYST_LLM=openai:<model> against a local server speaking the chat-completions API: the request
    asks for JSON, carries the context, and the raw answer comes back for the record."""
    import http.server
    import threading

    requests = []
    answer = judgement(sentiment="positive", confidence=0.8, cited_ids=["a"])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append((self.path, body))
            reply = json.dumps({"id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
                                "choices": [{"index": 0, "finish_reason": "stop",
                                             "message": {"role": "assistant", "content": answer}}],
                                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        rules = AnalystSettings(llm="openai:local-model", llm_base_url=f"http://127.0.0.1:{server.server_port}/v1")
        raw = chain.build_judge(chain.chat_model(rules)).invoke(chain.judge_prompt_values(inputs([item("a", 0.5)])))
    finally:
        server.shutdown()
    assert raw == answer
    [(path, body)] = requests
    assert path == "/v1/chat/completions" and body["model"] == "local-model"
    assert body["response_format"] == {"type": "json_object"} and body["temperature"] == 0.0
    assert "headline a" in body["messages"][-1]["content"]
