-- The Analyst's memory of news (streams/analyst/memory.py): similar items published before a moment.
-- Cosine HNSW over the MiniLM embeddings, built with pgvector's default graph parameters (m 16,
-- ef_construction 64); recall is tuned at query time (hnsw.ef_search, iterative scans), measured by
-- benchmarks/retrieval.py. Rows without an embedding yet are simply not in the graph.
CREATE INDEX news_embedding_hnsw ON news USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);
-- "items about this symbol": symbols && ARRAY[...] for the per-symbol exact scan
CREATE INDEX news_symbols_gin ON news USING gin (symbols);
-- the as-of time filter (ts < t) uses news_ts from 001
