"""The Memory agent ("the optimizer"): a two-tier store, Redis hot and Postgres cold (`cold_store`),
that the bridge, the risk agent and the analyst read through, and the agent whose learned policy
decides what stays hot. Redis runs with maxmemory and noeviction, so only the agent evicts."""
