-- The paper book as the broker keeps it, and the agents' standing as the consensus measures it.
-- Written by upsert (latest state per key); the history is in the orders/fills tables and topics.
CREATE TABLE accounts (
    account        text           PRIMARY KEY,
    cash           numeric(24, 6) NOT NULL,
    equity         numeric(24, 6) NOT NULL,
    realised_pnl   numeric(24, 6) NOT NULL DEFAULT 0,
    unrealised_pnl numeric(24, 6) NOT NULL DEFAULT 0,
    fees           numeric(24, 6) NOT NULL DEFAULT 0,
    gross_exposure double precision NOT NULL DEFAULT 0,
    net_exposure   double precision NOT NULL DEFAULT 0,
    updated_at     timestamptz    NOT NULL DEFAULT now()
);

CREATE TABLE positions (
    account        text           NOT NULL,
    symbol         text           NOT NULL,
    quantity       numeric(24, 6) NOT NULL,
    avg_price      numeric(20, 6) NOT NULL,
    last_price     numeric(20, 6) NOT NULL,
    unrealised_pnl numeric(24, 6) NOT NULL DEFAULT 0,
    realised_pnl   numeric(24, 6) NOT NULL DEFAULT 0,
    updated_at     timestamptz    NOT NULL DEFAULT now(),
    PRIMARY KEY (account, symbol)
);

CREATE TABLE agent_stats (
    agent          text             PRIMARY KEY,
    configured_weight double precision NOT NULL,
    hit_rate       double precision,
    scored_calls   bigint           NOT NULL DEFAULT 0,
    signals        bigint           NOT NULL DEFAULT 0,
    last_signal_at timestamptz,
    updated_at     timestamptz      NOT NULL DEFAULT now()
);
