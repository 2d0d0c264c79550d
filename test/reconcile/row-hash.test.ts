import t from 'tap';
import fc from 'fast-check';
import pg from 'pg';
import { loadConfig } from '../../infra/config.ts';
import { MOD, rowHash, sqlRowHash } from '../../reconcile/row-hash.ts';

// The projection digests only work if the audit's hash of a row is Postgres's hash of the
// same text, byte for byte: compare with the server, over every length around lookup3's
// 12-byte blocks and over arbitrary Unicode (user ids are free text).
t.test('rowHash is the low 48 bits of Postgres hashtextextended(text, 0)', async (t) => {
  const client = new pg.Client({ connectionString: loadConfig().databaseUrl });
  await client.connect();
  t.teardown(() => client.end());
  const texts = [
    ...Array.from({ length: 40 }, (_, n) => 'x'.repeat(n)),
    'user:u-1:available|12', '红包|用户:甲|88|CNY', '😀|\u00e9|0',
    ...fc.sample(fc.string({ unit: 'binary', maxLength: 120 }).filter((s) => !s.includes('\u0000')), { numRuns: 1500, seed: 20261121 }),
  ];
  const { rows } = await client.query<{ h: string }>(`select ${sqlRowHash('x')}::text as h from unnest($1::text[]) with ordinality as u(x, i) order by i`, [texts]);
  const differing = texts.filter((s, i) => rowHash(s) !== Number(rows[i]!.h));
  t.same(differing, [], `all ${texts.length} texts hash alike`);
  t.ok(texts.every((s) => rowHash(s) >= 0 && rowHash(s) < MOD), 'within 48 bits');
  t.not(rowHash('a|1'), rowHash('a|2'), 'a changed field changes the hash');
});
