"""The request models are the one definition of what the bridge accepts: they agree with the Avro
schemas field by field, and they are what the OpenAPI document shows."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Literal, Optional

import pytest
from pydantic import BaseModel, create_model

from streams.bridge.api import openapi_document
from streams.bridge.models import REQUEST_MODELS, NewsItem, Tick, avro_mismatches, component_schemas
from streams.bus.schemas import schema_str


def avro(name: str) -> dict:
    return json.loads(schema_str(name))


@pytest.mark.parametrize("body", sorted(REQUEST_MODELS))
def test_each_request_model_agrees_with_its_avro_schema(body):
    schema_name, model, _ = REQUEST_MODELS[body]
    assert avro_mismatches(model, avro(schema_name)) == []
    assert list(model.model_fields) == [f["name"] for f in avro(schema_name)["fields"]]  # same order too


def test_every_post_body_in_the_openapi_document_comes_from_a_model():
    document = openapi_document()
    bodies = set()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                bodies.add(ref.rsplit("/", 1)[-1])
    assert bodies == set(REQUEST_MODELS)
    components = document["components"]["schemas"]
    for name, schema in component_schemas().items():
        assert components[name] == schema, name
    assert components["Tick"]["required"] == ["symbol", "ts", "price", "size"]
    assert components["NewsItem"]["required"] == ["ts", "headline"]
    assert components["Tick"]["additionalProperties"] is False


def _tick_like(**changes) -> type[BaseModel]:
    """Tick with some fields changed: (annotation, default) or None to drop the field."""
    fields = {name: (field.annotation, field) for name, field in Tick.model_fields.items()}
    for name, spec in changes.items():
        if spec is None:
            fields.pop(name)
        else:
            fields[name] = spec
    return create_model("BrokenTick", **fields)


@pytest.mark.parametrize("changes, words", [
    ({"price": (int, ...)}, "price: Avro double, the model int"),
    ({"size": None}, "size: in Avro MarketTick, not in the model"),
    ({"colour": (str, "red")}, "colour: in the model, not in Avro MarketTick"),
    ({"ts": (str, ...)}, "ts: Avro timestamp-micros"),
    ({"symbol": (Optional[str], None)}, "symbol: the model allows null, Avro does not"),
    ({"source": (str, None)}, "source: required in Avro, the model's default is None"),
])
def test_a_model_that_drifts_from_avro_is_caught(changes, words):
    problems = avro_mismatches(_tick_like(**changes), avro("MarketTick"))
    assert any(words in p for p in problems), problems


def test_defaults_nullability_lists_and_enums_are_compared():
    news = {name: (field.annotation, field) for name, field in NewsItem.model_fields.items()}
    no_default = create_model("N1", **{**news, "body": (str, ...)})
    assert any("body: optional in Avro" in p for p in avro_mismatches(no_default, avro("NewsItem")))
    other_default = create_model("N2", **{**news, "body": (str, "none")})
    assert any("body: default ''" in p for p in avro_mismatches(other_default, avro("NewsItem")))
    not_nullable = create_model("N3", **{**news, "url": (str, "")})
    assert any("url: Avro allows null" in p for p in avro_mismatches(not_nullable, avro("NewsItem")))
    list_of_ints = create_model("N4", **{**news, "symbols": (list[int], [])})
    assert any("symbols[]: Avro string" in p for p in avro_mismatches(list_of_ints, avro("NewsItem")))

    side = {"type": "record", "name": "Side", "fields": [
        {"name": "side", "type": {"type": "enum", "name": "S", "symbols": ["BUY", "SELL"]}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}}]}
    assert avro_mismatches(create_model("Ok", side=(Literal["SELL", "BUY"], ...), at=(datetime, ...)), side) == []
    problems = avro_mismatches(create_model("Bad", side=(Literal["BUY", "HOLD"], ...), at=(datetime, ...)), side)
    assert problems == ["side: Avro enum ['BUY', 'SELL'], the model ['BUY', 'HOLD']"]
    assert "Avro enum" in avro_mismatches(create_model("Str", side=(str, ...), at=(datetime, ...)), side)[0]
