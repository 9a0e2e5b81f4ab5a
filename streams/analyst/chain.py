"""The Analyst's chain, as LCEL runnables: resolve symbols -> retrieve as-of context -> score the new
item in that context -> aggregate per symbol over a decaying window -> vote.

The decision part is pure (`decide`): it takes a VoteInputs (the item, its embedding, the retrieved
context with its stored embeddings and similarities, and the LLM's raw answer when one was used) and
returns the vote. The live agent and `algo analyst replay` both call it, so a recorded vote is
re-derived bit for bit from its record: nothing in it reads the clock, the network or the database.

How a vote is made, per symbol the item names:
- every item gets a signed sentiment v in [-1, 1]: the classifier's p(positive) - p(negative), or for
  the new item the LLM's label times its confidence when ANALYST_LLM is set;
- the context is the `context_k` items about the symbol most similar to the new one, published in the
  `window_s` before it (strictly before: never the item itself, never anything later);
- the new item counts with weight 1, or 0.1 when an earlier item is nearly the same text (similarity
  >= duplicate_similarity: a repeat is not new information); context items count with
  0.5 ** (age / half_life_s);
- the aggregate A = sum(w v) / sum(w); BUY when A >= min_polarity, SELL when A <= -min_polarity,
  else HOLD. Confidence: |A| for BUY/SELL (capped at 1), 1 - |A| / min_polarity for HOLD.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Callable, Literal, Sequence

import numpy as np
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough
from pydantic import BaseModel, Field

from streams.bus.ids import derived_id
from streams.market.bars import to_micros
from streams.errors import AlgoError
from streams.settings import AnalystSettings

AGENT = "analyst"
CHAIN_VERSION = "analyst-chain-1"  # bump when decide() changes: old records then say so on replay
PROMPT_VERSION = "analyst-prompt-1"
DUPLICATE_WEIGHT = 0.1
MAX_RATIONALE_HEADLINES = 3


class AnalystError(AlgoError):
    """A vote that cannot be made or re-derived (a record from another scorer, a bad LLM answer)."""


class LLMJudgement(BaseModel):
    """What a chat model must answer about a news item, as structured output."""
    sentiment: Literal["positive", "negative", "neutral"] = Field(
        description="the item's likely effect on the company's stock")
    confidence: float = Field(ge=0.0, le=1.0, description="how sure, from 0 to 1")
    cited_ids: list[str] = Field(default_factory=list, description="ids of the context items the answer rests on")
    reason: str = Field(max_length=300, description="one line")


@dataclass(frozen=True)
class ContextItem:
    """An earlier item retrieved as of the vote, with what the record keeps of it."""
    id: str
    ts_us: int
    headline: str
    similarity: float


@dataclass(frozen=True)
class VoteInputs:
    """All a vote depends on; the record of a vote is this plus the versions and the result."""
    news_id: str
    symbol: str
    ts_us: int
    headline: str
    text: str  # streams.analyst.embeddings.news_text(item): what was embedded and scored
    context: tuple[ContextItem, ...]
    context_texts: tuple[str, ...]
    llm_raw: str | None = None  # the chat model's raw answer, when one was used
    llm_model: str | None = None


@dataclass(frozen=True)
class Vote:
    action: str
    confidence: float
    aggregate: float
    item_sentiment: float
    item_weight: float
    context_sentiments: tuple[float, ...]
    context_weights: tuple[float, ...]
    cited_ids: tuple[str, ...]
    reason: str
    judged_by: str  # "scorer" or the LLM's name


def llm_judgement(raw: str) -> LLMJudgement:
    """Parses a chat model's raw answer (JSON, possibly in a ``` fence) into an LLMJudgement."""
    from langchain_core.output_parsers import PydanticOutputParser

    try:
        return PydanticOutputParser(pydantic_object=LLMJudgement).parse(raw)
    except Exception as error:  # langchain's OutputParserException or pydantic's ValidationError
        raise AnalystError(f"the LLM's answer is not a valid judgement: {str(error).splitlines()[0]}") from error


def decide(inputs: VoteInputs, item_embedding: np.ndarray, context_embeddings: np.ndarray, scorer,
           rules: AnalystSettings) -> Vote:
    """The vote for one symbol, from its inputs alone (see the module doc)."""
    texts = [inputs.text, *inputs.context_texts]
    item_row = np.asarray(item_embedding, dtype=np.float32).reshape(1, -1)
    embeddings = np.vstack([item_row, np.asarray(context_embeddings, dtype=np.float32).reshape(len(inputs.context), item_row.shape[1])])
    scores = scorer.score_features(embeddings, texts)
    sentiments = [float(s.polarity) for s in scores]
    judged_by, reason = "scorer", f"{scores[0].label} {scores[0].confidence:.2f} (classifier)"
    context_ids = {c.id for c in inputs.context}
    cited = [c.id for c in inputs.context]
    if inputs.llm_raw is not None:
        judgement = llm_judgement(inputs.llm_raw)
        sign = {"positive": 1.0, "negative": -1.0, "neutral": 0.0}[judgement.sentiment]
        sentiments[0] = sign * float(judgement.confidence)
        judged_by, reason = inputs.llm_model or "llm", judgement.reason.strip().splitlines()[0] if judgement.reason.strip() else ""
        # an id the model made up, or one it was not shown, is not a citation
        cited = [i for i in dict.fromkeys(judgement.cited_ids) if i in context_ids]
    repeat = any(c.similarity >= rules.duplicate_similarity for c in inputs.context)
    item_weight = DUPLICATE_WEIGHT if repeat else 1.0
    context_weights = [0.5 ** (max(0, inputs.ts_us - c.ts_us) / 1e6 / rules.half_life_s) for c in inputs.context]
    weights = [item_weight, *context_weights]
    aggregate = sum(w * v for w, v in zip(weights, sentiments)) / sum(weights)
    if aggregate >= rules.min_polarity:
        action, confidence = "BUY", min(1.0, aggregate)
    elif aggregate <= -rules.min_polarity:
        action, confidence = "SELL", min(1.0, -aggregate)
    else:
        action, confidence = "HOLD", 1.0 - abs(aggregate) / rules.min_polarity if rules.min_polarity > 0 else 1.0
    return Vote(action=action, confidence=float(confidence), aggregate=float(aggregate),
                item_sentiment=sentiments[0], item_weight=item_weight,
                context_sentiments=tuple(sentiments[1:]), context_weights=tuple(context_weights),
                cited_ids=tuple(cited), reason=reason, judged_by=judged_by)


def model_version(scorer_version: str, embedding_version: str, llm: str = "") -> str:
    return f"{CHAIN_VERSION}+{scorer_version}+{embedding_version}" + (f"+{llm}+{PROMPT_VERSION}" if llm else "")


def _quote(headline: str, limit: int = 90) -> str:
    headline = " ".join(headline.split())
    return f'"{headline if len(headline) <= limit else headline[:limit - 1] + "…"}"'


def rationale(inputs: VoteInputs, vote: Vote) -> str:
    """Quotes the headlines the vote rests on: the new one, then the cited context items."""
    by_id = {c.id: c for c in inputs.context}
    cited = [by_id[i].headline for i in vote.cited_ids[:MAX_RATIONALE_HEADLINES]]
    more = len(vote.cited_ids) - len(cited)
    context = f"; context: {'; '.join(_quote(h) for h in cited)}" + (f" (+{more} more)" if more > 0 else "") if cited else ""
    return (f"{vote.action} {inputs.symbol}: sentiment {vote.aggregate:+.2f} over {1 + len(inputs.context)} item(s), "
            f"new {vote.item_sentiment:+.2f} by {vote.judged_by} on {_quote(inputs.headline)}{context}")


def signal_record(inputs: VoteInputs, vote: Vote, version: str) -> dict:
    """The AgentSignal: the same item, symbol and model give the same id, so a replay re-creates it."""
    ts = datetime.fromtimestamp(inputs.ts_us / 1e6, tz=timezone.utc)
    return {
        "signal_id": derived_id("signal", AGENT, inputs.symbol, inputs.news_id, ts, version),
        "agent": AGENT, "symbol": inputs.symbol, "ts": ts,
        "action": vote.action, "confidence": vote.confidence, "rationale": rationale(inputs, vote),
        "model_version": version,
        # the news ids it used: the new item, then every retrieved one (cited or not)
        "input_refs": [f"news:{inputs.news_id}", *(f"news:{c.id}" for c in inputs.context)],
    }


def vote_record(inputs: VoteInputs, vote: Vote, signal: dict, rules: AnalystSettings, versions: dict) -> dict:
    """Everything the vote depended on and what it gave, as JSON-ready data (agent.logs, Postgres)."""
    return {
        "signal_id": signal["signal_id"], "inputs": asdict(inputs), "rules": _rules(rules), "versions": versions,
        "vote": asdict(vote), "signal": {k: signal[k] for k in ("action", "confidence", "rationale", "model_version")},
    }


def _rules(rules: AnalystSettings) -> dict:
    return {k: getattr(rules, k) for k in ("context_k", "window_s", "half_life_s", "min_polarity", "duplicate_similarity")}


def inputs_from_record(record: dict) -> VoteInputs:
    raw = dict(record["inputs"])
    raw["context"] = tuple(ContextItem(**c) for c in raw["context"])
    raw["context_texts"] = tuple(raw["context_texts"])
    return VoteInputs(**raw)


def rules_from_record(record: dict) -> AnalystSettings:
    return AnalystSettings(**record["rules"])


def log_record(record: dict) -> dict:
    """The AgentLog that carries a vote record to agent.logs (and, by the persistence agent, to
    Postgres's agent_logs, where `algo analyst replay` finds it by signal id)."""
    inputs = record["inputs"]
    return {
        "log_id": derived_id("log", AGENT, "vote", record["signal_id"]),
        "agent": AGENT, "ts": datetime.fromtimestamp(inputs["ts_us"] / 1e6, tz=timezone.utc), "level": "INFO",
        "message": f"vote {record['vote']['action']} {inputs['symbol']} on news:{inputs['news_id']}",
        "context": {"kind": "vote", "signal_id": record["signal_id"], "news_id": inputs["news_id"],
                    "symbol": inputs["symbol"], "record": json.dumps(record, separators=(",", ":"), sort_keys=True)},
    }


def unknown_company_log(item: dict, ts: datetime, declared_unknown: Sequence[str]) -> dict:
    """The AgentLog for an item that names no company in the symbol table: it is not voted on."""
    detail = f" (declared {', '.join(declared_unknown)}: not in the symbol table)" if declared_unknown else ""
    return {
        "log_id": derived_id("log", AGENT, "unknown", item["id"]),
        "agent": AGENT, "ts": ts, "level": "WARNING",
        "message": f"news:{item['id']} names no known company{detail}: not voted on",
        "context": {"kind": "unknown_company", "news_id": item["id"], "headline": item["headline"][:500]},
    }


# --- the LCEL chain -------------------------------------------------------------------------------------

@dataclass
class ChainParts:
    """What the chain's steps call: given by the agent (real Postgres, the shipped scorer) or a test."""
    resolve: Callable[[dict], object]  # item -> streams.analyst.symbols.Resolution
    retrieve: Callable[[dict, np.ndarray, str], list]  # (item, embedding, symbol) -> retrieved rows (with .embedding)
    scorer: object
    rules: AnalystSettings
    judge: Runnable | None = None  # the LLM judgement runnable (build_judge), None = the offline scorer
    llm_model: str | None = None
    extra: dict = field(default_factory=dict)


def _resolve(parts: ChainParts):
    def step(state: dict) -> object:
        item = state["item"]
        return parts.resolve(item)
    return RunnableLambda(step, name="resolve_symbols")


def _retrieve(parts: ChainParts):
    def step(state: dict) -> dict:
        return {symbol: parts.retrieve(state["item"], state["embedding"], symbol)
                for symbol in state["resolution"].symbols}
    return RunnableLambda(step, name="retrieve_as_of")


def _inputs(parts: ChainParts):
    def step(state: dict) -> dict:
        from streams.analyst.embeddings import news_text

        item, ts_us = state["item"], state["ts_us"]
        per_symbol = {}
        for symbol, rows in state["retrieved"].items():
            per_symbol[symbol] = VoteInputs(
                news_id=item["id"], symbol=symbol, ts_us=ts_us, headline=item["headline"], text=news_text(item),
                context=tuple(ContextItem(id=r.id, ts_us=to_micros(r.ts), headline=r.headline,
                                          similarity=float(r.similarity)) for r in rows),
                context_texts=tuple(news_text({"headline": r.headline, "body": r.body}) for r in rows),
            )
        return per_symbol
    return RunnableLambda(step, name="gather_inputs")


def _judge(parts: ChainParts):
    def step(state: dict) -> dict:
        if parts.judge is None:
            return state["inputs"]
        judged = {}
        for symbol, inputs in state["inputs"].items():
            raw = parts.judge.invoke(judge_prompt_values(inputs))
            judged[symbol] = replace(inputs, llm_raw=raw, llm_model=parts.llm_model)
        return judged
    return RunnableLambda(step, name="score_in_context")


def _vote(parts: ChainParts):
    def step(state: dict) -> dict:
        width = len(state["embedding"])
        embeddings = {symbol: np.asarray([r.embedding for r in rows], dtype=np.float32).reshape(len(rows), width)
                      for symbol, rows in state["retrieved"].items()}
        return {symbol: (inputs, decide(inputs, state["embedding"], embeddings[symbol], parts.scorer, parts.rules))
                for symbol, inputs in state["judged"].items()}
    return RunnableLambda(step, name="aggregate_and_vote")


def build_chain(parts: ChainParts) -> Runnable:
    """{"item": NewsItem, "ts_us": int, "embedding": (384,)} -> {symbol: (VoteInputs, Vote)} (empty when the
    item names no known company: see state["resolution"])."""
    return (RunnablePassthrough.assign(resolution=_resolve(parts))
            | RunnablePassthrough.assign(retrieved=_retrieve(parts))
            | RunnablePassthrough.assign(inputs=_inputs(parts))
            | RunnablePassthrough.assign(judged=_judge(parts))
            | RunnablePassthrough.assign(votes=_vote(parts)))


# --- the pluggable LLM ----------------------------------------------------------------------------------

JUDGE_SYSTEM = (
    "You are a financial news analyst. Judge how a news item is likely to move the named company's stock, "
    "using only the item and the earlier items given as context (all published before it). Answer with JSON "
    "only, matching this schema: {schema}")
JUDGE_HUMAN = (
    "Company: {symbol}\nPublished: {published}\nItem: {headline}\n{text}\n\nEarlier items (id | date | headline):\n"
    "{context}\n\nCite the ids of the earlier items your answer rests on, if any.")


def judge_prompt_values(inputs: VoteInputs) -> dict:
    lines = [f"{c.id} | {datetime.fromtimestamp(c.ts_us / 1e6, tz=timezone.utc):%Y-%m-%d} | {c.headline}"
             for c in inputs.context]
    return {"symbol": inputs.symbol, "headline": inputs.headline, "text": inputs.text,
            "published": f"{datetime.fromtimestamp(inputs.ts_us / 1e6, tz=timezone.utc):%Y-%m-%d %H:%M} UTC",
            "context": "\n".join(lines) or "(none)",
            "schema": json.dumps(LLMJudgement.model_json_schema())}


def build_judge(llm) -> Runnable:
    """prompt | chat model | its raw text. The raw text is what the record keeps; the vote parses it
    (llm_judgement), so a replay re-derives the vote from the recorded answer without calling the model."""
    from langchain_core.messages import AIMessage
    from langchain_core.prompts import ChatPromptTemplate

    prompt = ChatPromptTemplate.from_messages([("system", JUDGE_SYSTEM), ("human", JUDGE_HUMAN)])

    def raw_text(message) -> str:
        if isinstance(message, AIMessage) and message.tool_calls:
            return json.dumps(message.tool_calls[0]["args"])
        content = message.content if hasattr(message, "content") else message
        if isinstance(content, list):  # content blocks
            content = "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
        llm_judgement(str(content))  # a bad answer fails here, before it is recorded
        return str(content)

    # an OpenAI-compatible server in JSON mode answers in JSON for sure; other models are asked in the prompt
    model = llm.bind(response_format={"type": "json_object"}) if _is_openai(llm) else llm
    return prompt | model | RunnableLambda(raw_text, name="raw_answer")


def _is_openai(llm) -> bool:
    return type(llm).__name__ in ("ChatOpenAI", "AzureChatOpenAI")


def chat_model(rules: AnalystSettings):
    """The chat model ANALYST_LLM names: openai:<model> (any OpenAI-compatible server at
    ANALYST_LLM_BASE_URL) or llamacpp:<gguf path> (needs the optional llama-cpp-python and
    langchain-community packages)."""
    kind, _, target = rules.llm.partition(":")
    if kind == "openai":
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(model=target, base_url=rules.llm_base_url or None, api_key=rules.llm_api_key or "unused",
                          temperature=0.0, timeout=rules.llm_timeout_s, max_retries=2)
    if kind == "llamacpp":
        try:
            from langchain_community.chat_models import ChatLlamaCpp
        except ImportError as error:
            raise AnalystError("ANALYST_LLM=llamacpp:... needs the optional extra: "
                               "pip install llama-cpp-python langchain-community") from error
        return ChatLlamaCpp(model_path=target, temperature=0.0, n_ctx=4096, verbose=False)
    raise AnalystError(f"ANALYST_LLM={rules.llm!r}: use openai:<model> or llamacpp:<gguf path>")
