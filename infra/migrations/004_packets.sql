-- Group red packets. packets, packet_claims and packet_credits are projections (derived from
-- the wallet topic); packet_requests is the command side, like withdrawal_requests.

create table packets (
  packet_id       uuid primary key,
  sender_id       text not null,
  amount          bigint not null check (amount > 0),
  currency        text not null,
  share_count     int not null check (share_count > 0),
  shares          bigint[] not null,
  greeting        text not null,
  created_at      timestamptz not null,
  expires_at      timestamptz not null,
  status          text not null check (status in ('open', 'finished', 'refunded', 'rejected')),
  claimed_count   int not null,
  claimed_amount  bigint not null,
  refunded_amount bigint not null,
  closed_at       timestamptz
);
-- The refunder's work list: open packets by expiry.
create index packets_open_idx on packets(expires_at) where status = 'open';
create index packets_sender_idx on packets(sender_id, created_at desc);

create table packet_claims (
  packet_id  uuid not null,
  seq        int not null,
  user_id    text not null,
  amount     bigint not null check (amount > 0),
  currency   text not null,
  claimed_at timestamptz not null,
  primary key (packet_id, seq)
);
create unique index packet_claims_user_once on packet_claims(packet_id, user_id);
create index packet_claims_user_idx on packet_claims(user_id);

-- Credits are written by the grabber's partition and claims by the sender's, so neither
-- updates the other's rows: the two are joined when read.
create table packet_credits (
  packet_id   uuid not null,
  user_id     text not null,
  amount      bigint not null check (amount > 0),
  currency    text not null,
  credited_at timestamptz not null,
  primary key (packet_id, user_id)
);

-- Command side: packets the API accepted. Until its PacketCreated is projected, a packet
-- holds its total against the sender's available balance, as a withdrawal request does.
create table packet_requests (
  packet_id       uuid primary key,
  sender_id       text not null,
  idempotency_key text not null,
  amount          bigint not null check (amount > 0),
  currency        text not null,
  share_count     int not null,
  shares          bigint[] not null,
  greeting        text not null,
  expires_at      timestamptz not null,
  created_at      timestamptz not null default now()
);
create index packet_requests_sender_idx on packet_requests(sender_id);
