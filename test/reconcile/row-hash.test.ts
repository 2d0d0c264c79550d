import t from 'tap';
import fc from 'fast-check';
import pg from 'pg';
import { loadConfig } from '../../infra/config.ts';
import {
  BALANCE_HASH, EVENT_HASH, MOD, POSTING_HASH, TOKEN_HASH, TOKEN_STATE_HASH, WITHDRAWAL_HASH, WITHDRAWAL_STATE_HASH,
  balanceHash, eventHash, postingHash, textHash, textHashSql, tokenHash, tokenStateHash, withdrawalHash, withdrawalStateHash,
} from '../../reconcile/row-hash.ts';
import type { TokenRecord } from '../../domain/ledger.ts';
import type { WithdrawalRecord } from '../../domain/withdrawals.ts';
import type { Currency } from '../../domain/money.ts';

// The projection digests only work if the audit's hash of a row is Postgres's hash of the
// same row, bit for bit: each pair is compared with the server, over every text length
// around lookup3's 12-byte blocks, arbitrary Unicode (user ids are free text), upper-case
// UUIDs, negative amounts, and seeds that are zero.
const SEED = 20261121;
const texts = [
  ...Array.from({ length: 40 }, (_, n) => 'x'.repeat(n)),
  'user:u-1:available', '红包|用户:甲', '😀\u00e9', 'é'.repeat(13),
  ...fc.sample(fc.string({ unit: 'binary', maxLength: 120 }).filter((s) => !s.includes('\u0000')), { numRuns: 600, seed: SEED }),
];
const uuids = fc.sample(fc.uuid().map((u) => (u.charCodeAt(0) % 2 ? u.toUpperCase() : u)), { numRuns: texts.length, seed: SEED });
const amounts = fc.sample(fc.oneof(fc.constant(0), fc.integer({ min: -1e6, max: 1e6 }), fc.maxSafeInteger(), fc.maxSafeInteger().map((n) => -n)), { numRuns: texts.length, seed: SEED });
const text = (i: number) => texts[i % texts.length]!;

const token = (i: number) => ({
  tokenId: uuids[i]!, amount: amounts[i]!, userId: text(i), activityId: text(i + 1), sceneId: text(i + 2), orderNo: text(i + 3), currency: text(i + 4), status: text(i + 5),
}) as unknown as TokenRecord;
const withdrawal = (i: number) => ({
  withdrawalId: uuids[i]!, amount: amounts[i]!, userId: text(i), currency: text(i + 1), status: text(i + 2), providerRef: i % 3 ? text(i + 3) : null,
}) as unknown as WithdrawalRecord;
const posting = (i: number) => ({ leg: i % 7, account: text(i), currency: text(i + 1) as Currency, amount: amounts[i]! });

/** A kind of row: its SQL hash, the table alias it reads, its columns (type and value of row i), and its TypeScript hash. */
interface Kind {
  name: string;
  sql: string;
  alias: string;
  columns: Record<string, [type: string, value: (i: number) => unknown]>;
  js: (i: number) => number;
}
const kinds: Kind[] = [
  { name: 'text', sql: textHashSql('x.s'), alias: 'x', columns: { s: ['text', text] }, js: (i) => textHash(text(i)) },
  { name: 'event', sql: EVENT_HASH, alias: 'e', columns: { event_id: ['uuid', (i) => uuids[i]] }, js: (i) => eventHash(uuids[i]!) },
  {
    name: 'posting', sql: POSTING_HASH, alias: 'p',
    columns: { event_id: ['uuid', (i) => uuids[i]], leg: ['smallint', (i) => posting(i).leg], amount: ['bigint', (i) => posting(i).amount], account: ['text', (i) => posting(i).account], currency: ['text', (i) => posting(i).currency] },
    js: (i) => postingHash(uuids[i]!, posting(i).leg, posting(i)),
  },
  {
    name: 'token', sql: TOKEN_HASH, alias: 't',
    columns: {
      token_id: ['uuid', (i) => token(i).tokenId], amount: ['bigint', (i) => token(i).amount], user_id: ['text', (i) => token(i).userId], activity_id: ['text', (i) => token(i).activityId],
      scene_id: ['text', (i) => token(i).sceneId], order_no: ['text', (i) => token(i).orderNo], currency: ['text', (i) => token(i).currency],
    },
    js: (i) => tokenHash(token(i)),
  },
  { name: 'token state', sql: TOKEN_STATE_HASH, alias: 't', columns: { token_id: ['uuid', (i) => token(i).tokenId], status: ['text', (i) => token(i).status] }, js: (i) => tokenStateHash(token(i)) },
  {
    name: 'withdrawal', sql: WITHDRAWAL_HASH, alias: 'w',
    columns: { withdrawal_id: ['uuid', (i) => withdrawal(i).withdrawalId], amount: ['bigint', (i) => withdrawal(i).amount], user_id: ['text', (i) => withdrawal(i).userId], currency: ['text', (i) => withdrawal(i).currency] },
    js: (i) => withdrawalHash(withdrawal(i)),
  },
  {
    name: 'withdrawal state', sql: WITHDRAWAL_STATE_HASH, alias: 'w',
    columns: { withdrawal_id: ['uuid', (i) => withdrawal(i).withdrawalId], status: ['text', (i) => withdrawal(i).status], provider_ref: ['text', (i) => withdrawal(i).providerRef] },
    js: (i) => withdrawalStateHash(withdrawal(i)),
  },
  {
    name: 'balance', sql: BALANCE_HASH, alias: 'b',
    columns: { account: ['text', text], currency: ['text', (i) => text(i + 1)], balance: ['bigint', (i) => amounts[i]] },
    js: (i) => balanceHash(text(i), text(i + 1), amounts[i]!),
  },
];

t.test('every row hash is the same number on both sides', async (t) => {
  const client = new pg.Client({ connectionString: loadConfig().databaseUrl });
  await client.connect();
  t.teardown(() => client.end());
  const n = texts.length;
  for (const k of kinds) {
    const cols = Object.entries(k.columns);
    const { rows } = await client.query<{ h: string }>(
      `select ${k.sql}::text as h from unnest(${cols.map(([, [type]], j) => `$${j + 1}::${type}[]`).join(', ')}) with ordinality as ${k.alias}(${cols.map(([c]) => c).join(', ')}, i) order by i`,
      cols.map(([, [, value]]) => Array.from({ length: n }, (_, i) => value(i))),
    );
    t.equal(rows.length, n);
    const differing = rows.map((r, i) => (Number(r.h) === k.js(i) ? null : i)).filter((i) => i !== null);
    t.same(differing, [], `${k.name}: all ${n} rows hash alike`);
  }
});

t.test('hashes are 48-bit and every field counts', async (t) => {
  t.ok(texts.every((s) => textHash(s) >= 0 && textHash(s) < MOD), 'within 48 bits');
  const w = withdrawal(1);
  const base = withdrawalStateHash(w);
  t.not(withdrawalStateHash({ ...w, providerRef: 'other' }), base, 'provider ref');
  t.not(withdrawalStateHash({ ...w, status: 'failed' }), base, 'status');
  const tk = token(2);
  for (const field of ['userId', 'activityId', 'sceneId', 'orderNo', 'currency'] as const) t.not(tokenHash({ ...tk, [field]: `${tk[field]}!` }), tokenHash(tk), field);
  t.not(tokenHash({ ...tk, amount: tk.amount + 1 }), tokenHash(tk), 'amount');
  t.not(eventHash('00000000-0000-0000-0000-000000000001'), eventHash('00000000-0000-0000-0000-000000000002'), 'the id');
  t.equal(eventHash('ABCDEF00-0000-0000-0000-000000000001'), eventHash('abcdef00-0000-0000-0000-000000000001'), 'a UUID in either case');
  const p = posting(3);
  t.not(postingHash(uuids[3]!, 0, p), postingHash(uuids[3]!, 1, p), 'the leg');
  t.not(postingHash(uuids[3]!, 0, { ...p, amount: -p.amount - 1 }), postingHash(uuids[3]!, 0, p), 'the amount');
  // Two fields' texts swapped are a different row.
  t.not(balanceHash('a', 'b', 5), balanceHash('b', 'a', 5), 'field order');
});
