-- The ledger projection. Everything here is derived from the Kafka topics and can be
-- rebuilt by replaying them; consumer_offsets commits in the same transaction as the
-- effects, which is what makes the projection effectively-once.

create table activities (
  activity_id      text primary key,
  name             text not null,
  currency         text not null,
  max_single_grant bigint not null check (max_single_grant > 0),
  created_at       timestamptz not null default now()
);

-- Every event applied, once: the primary key is the deterministic event id.
create table ledger_events (
  event_id    uuid primary key,
  event_type  text not null,
  activity_id text not null,
  topic       text not null,
  partition   int not null,
  "offset"    bigint not null,
  occurred_at timestamptz not null,
  applied_at  timestamptz not null default now()
);

-- Double-entry postings: per event they sum to zero (checked by the fold before insert).
create table postings (
  event_id   uuid not null references ledger_events(event_id),
  leg        smallint not null,
  account    text not null,
  currency   text not null,
  amount     bigint not null check (amount <> 0),
  created_at timestamptz not null,
  primary key (event_id, leg)
);
create index postings_account_idx on postings(account, created_at);

create table account_balances (
  account    text primary key,
  currency   text not null,
  balance    bigint not null,
  updated_at timestamptz not null default now()
);

create table tokens (
  token_id    uuid primary key,
  user_id     text not null,
  activity_id text not null,
  scene_id    text not null,
  order_no    text not null,
  amount      bigint not null check (amount > 0),
  currency    text not null,
  status      text not null check (status in ('pending', 'credited')),
  issued_at   timestamptz not null,
  credited_at timestamptz
);
-- Serves the wallet: pending tokens, cumulative income and "has received a reward here"
-- are all sums or existence checks over one user's tokens.
create index tokens_user_idx on tokens(user_id, activity_id);

-- What the fold refused to apply (a credit for an unknown token, a second credit, ...).
create table ledger_anomalies (
  event_id   uuid not null,
  kind       text not null,
  detail     jsonb not null,
  found_at   timestamptz not null default now(),
  primary key (event_id, kind)
);

create table consumer_offsets (
  consumer    text not null,
  topic       text not null,
  partition   int not null,
  next_offset bigint not null,
  updated_at  timestamptz not null default now(),
  primary key (consumer, topic, partition)
);
