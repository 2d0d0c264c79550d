import type { PacketCreated } from '../domain/events.ts';
import type { Currency } from '../domain/money.ts';

/**
 * The command side of red packets: a packet the API accepted is a request row, holding its
 * total against the sender's balance until its PacketCreated is projected (see
 * api/wallets/debits.ts). Everything the event carries is stored here, so the event is fixed
 * when the request is.
 */
export interface PacketRequestRow {
  packet_id: string; sender_id: string; amount: number; currency: Currency; share_count: number; shares: (string | number)[];
  greeting: string; created_ms: number; expires_ms: number; requested_by: string; client_address: string; request_id: string;
}

export const PACKET_REQUEST_COLUMNS = `packet_id, sender_id, amount, currency, share_count, shares, greeting, requested_by, client_address, request_id,
  (extract(epoch from created_at) * 1000)::bigint as created_ms, (extract(epoch from expires_at) * 1000)::bigint as expires_ms`;

export function packetCreatedFrom(row: PacketRequestRow): PacketCreated {
  return {
    eventId: row.packet_id, occurredAt: row.created_ms, activityId: '', traceId: row.request_id,
    packetId: row.packet_id, senderId: row.sender_id, amount: row.amount, currency: row.currency, count: row.share_count,
    shares: row.shares.map(Number), greeting: row.greeting, expiresAt: row.expires_ms,
    requestedBy: row.requested_by, clientAddress: row.client_address, requestId: row.request_id,
  };
}
