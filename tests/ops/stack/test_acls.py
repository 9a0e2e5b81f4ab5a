"""ops/stack/acls.py's policy against the agents themselves: each worker's principal may read what its
agents subscribe to and write what they publish (the secure profile refuses anything else)."""
from __future__ import annotations

import ast
import importlib.util

import pytest

from ops.stack.acls import COMBINED, POLICY, policy
from streams.settings import PRINCIPALS
from streams.workers import WORKERS, input_topics


def published_topics(module: str) -> set[str]:
    """The topics a module's `avro_topic("...")` calls name (the topics its agents send to)."""
    tree = ast.parse(open(importlib.util.find_spec(module).origin).read())
    return {node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "avro_topic"
            and node.args and isinstance(node.args[0], ast.Constant)}


def test_every_worker_has_a_principal_and_a_policy():
    assert set(PRINCIPALS) == set(WORKERS) | {"admin", "bridge"}
    assert set(POLICY) | set(COMBINED) == set(WORKERS)


@pytest.mark.parametrize("worker", sorted(POLICY))
def test_a_workers_reads_are_its_agents_subscriptions(worker):
    assert set(input_topics(worker)) == set(POLICY[worker][0])


@pytest.mark.parametrize("worker", sorted(POLICY))
def test_a_workers_writes_cover_what_its_agents_publish(worker):
    published = {topic for module in WORKERS[worker] for topic in published_topics(module)}
    _, writes = policy(worker)
    assert published <= writes, published - writes
    assert "dead-letter" in writes


def test_combined_workers_get_the_union():
    reads, writes = policy("signals")
    assert reads == {"market.ticks", "market.bars", "agent.signals"}
    assert writes == {"market.bars", "agent.signals", "consensus.decisions", "dead-letter"}
