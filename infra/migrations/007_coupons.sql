-- Coupon gift packs.
--
-- Configuration (not derived from the log): coupon templates, and gift packs mapping slots
-- to an iOS and an Android template.
create table coupon_templates (
  template_id        text primary key,
  platform           text not null check (platform in ('ios', 'android')),
  face_value         bigint not null check (face_value > 0),
  currency           text not null,
  valid_days         int not null check (valid_days > 0),
  total_stock        bigint not null check (total_stock >= 0),
  low_stock_percent  int check (low_stock_percent between 0 and 100),
  updated_at         timestamptz not null default now(),
  updated_by         text not null
);

-- The command side's stock counters. A template's stock is split into buckets, so grants
-- of one pack do not all queue on one row: a grant takes one unit from a bucket it can lock
-- without waiting. `taken <= capacity` per bucket and the capacities summing to the
-- template's total_stock make the stock impossible to exceed (invariant C1); the
-- projection's coupon_consumption.issued must come to sum(taken) once it has caught up.
create table coupon_stock (
  template_id  text not null references coupon_templates,
  bucket       int not null check (bucket >= 0),
  capacity     bigint not null check (capacity >= 0),
  taken        bigint not null default 0 check (taken >= 0),
  primary key (template_id, bucket),
  check (taken <= capacity)
);

create table gift_packs (
  pack_id     text primary key,
  name        text not null,
  slots       jsonb not null,
  updated_at  timestamptz not null default now(),
  updated_by  text not null
);

-- The command side: each granted pack's state (domain/coupons.ts PackRecord), locked by
-- every command on the pack, and the events decided but not yet acknowledged by Kafka (the
-- outbox, in decision order; the coupon keeper produces what an API instance could not).
create table pack_states (
  grant_id         uuid primary key,
  activity_id      text not null,
  order_no         text not null,
  user_id          text not null,
  fingerprint      text not null,
  record           jsonb not null,
  hold_expires_at  timestamptz,
  unique (activity_id, order_no)
);
create index pack_states_hold_expiry on pack_states (hold_expires_at) where hold_expires_at is not null;

create table coupon_owners (
  coupon_id  uuid primary key,
  grant_id   uuid not null
);

create table coupon_outbox (
  seq         bigserial primary key,
  event_id    uuid not null,
  grant_id    uuid not null,
  type        text not null,
  payload     jsonb not null,
  created_at  timestamptz not null default now()
);
create index coupon_outbox_grant on coupon_outbox (grant_id, seq);

-- Projections of the coupon events (the fold in domain/ledger.ts → coupons.ts).
create table gift_pack_grants (
  grant_id     uuid primary key,
  user_id      text not null,
  activity_id  text not null,
  order_no     text not null,
  pack_id      text not null,
  platform     text not null,
  status       text not null check (status in ('unclaimed', 'claimed', 'partially_used', 'used')),
  granted_at   timestamptz not null,
  claimed_at   timestamptz,
  record       jsonb not null
);
create index gift_pack_grants_user on gift_pack_grants (user_id, granted_at desc);

create table user_coupons (
  coupon_id     uuid primary key,
  grant_id      uuid not null,
  user_id       text not null,
  template_id   text not null,
  slot          text not null,
  platform      text not null,
  face_value    bigint not null check (face_value > 0),
  currency      text not null,
  expires_at    timestamptz not null,
  payment_id    text,
  frozen_until  timestamptz,
  redeemed_at   timestamptz
);
create index user_coupons_user on user_coupons (user_id);

-- Updated by signed deltas (a redeem is frozen −1, redeemed +1), so the columns carry no
-- check of their own: a proposed insert row may be negative. The invariant checker compares
-- them with user_coupons.
create table coupon_consumption (
  template_id  text primary key,
  issued       bigint not null default 0,
  frozen       bigint not null default 0,
  redeemed     bigint not null default 0
);
