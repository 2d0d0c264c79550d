-- Who asked for a red packet, kept with the request so that whoever produces its PacketCreated
-- (the API, a retry, the packet keeper after a failed produce) produces the same event.
alter table packet_requests add column requested_by text not null default '';
alter table packet_requests add column client_address text not null default '';
alter table packet_requests add column request_id text not null default '';
-- The keeper's work list: requests whose event may never have been produced.
create index packet_requests_created_idx on packet_requests(created_at);
