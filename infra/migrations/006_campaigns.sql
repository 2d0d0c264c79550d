-- Lottery campaigns. campaign_configs is the configuration's history: every accepted put and
-- every rollback is a new version, and the highest version is the one in force. It is the
-- only table here that is not derived from the log.
create table campaign_configs (
  activity_id       text not null,
  version           int not null check (version > 0),
  config            jsonb not null,
  created_at        timestamptz not null default now(),
  created_by        text not null,
  note              text not null default '',
  rolled_back_to  int,
  primary key (activity_id, version)
);

-- Projections of LotteryDrawn: each won draw, and per prize how many were issued. A draw that
-- did not win is only in the log (and ledger_events). Redis's quota and win counters are
-- rebuilt from these after Redis loses its data.
create table draw_wins (
  activity_id   text not null,
  draw_id       text not null,
  child_id      text not null,
  scene_id      text not null,
  pool_id       text not null,
  prize_id      text not null,
  user_id       text not null,
  award_type    text not null check (award_type in ('cash', 'goods', 'coupon')),
  amount        bigint not null check (amount >= 0),
  currency      text not null,
  item_id       text not null,
  quantity      int not null check (quantity >= 0),
  fulfilment_id text not null,
  drawn_at      timestamptz not null,
  primary key (activity_id, draw_id)
);
create index draw_wins_user_idx on draw_wins(activity_id, child_id, user_id);

create table prize_consumption (
  activity_id   text not null,
  child_id      text not null,
  prize_id      text not null,
  issued        bigint not null check (issued >= 0),
  last_drawn_at timestamptz not null,
  primary key (activity_id, child_id, prize_id)
);

create table goods_grants (
  grant_id    uuid primary key,
  user_id     text not null,
  activity_id text not null,
  scene_id    text not null,
  order_no    text not null,
  item_id     text not null,
  quantity    int not null check (quantity > 0),
  granted_at  timestamptz not null
);
create index goods_grants_user_idx on goods_grants(user_id);
