import t from 'tap';
import { startTestLedger } from './helpers/ledger.ts';
import { issued } from './helpers/events.ts';

t.test('an undecodable message goes to the dead-letter topic and processing continues', async (t) => {
  const l = await startTestLedger(t, { crediting: true });
  const act = await l.activity({ budget: 1_000 });
  await l.rt.publisher.publish('TokenIssued', issued(act, 'u-dlq', 'before', 10));
  // Two that are not Avro at all, and one that is well-formed Avro but no valid event (a
  // negative amount): applied, it would fail the tokens table's check and stop the partition.
  const invalid = await l.rt.codec.encode(l.rt.topics.wallet, 'TokenIssued', { ...issued(act, 'u-dlq', 'negative', 10), amount: -10 });
  const garbage = [Buffer.from('not avro at all'), Buffer.from([0, 0, 0, 0x7f, 0xff, 1, 2, 3]), Buffer.alloc(0), invalid];
  for (const value of garbage) await l.rt.producer.send(l.rt.topics.wallet, { key: 'u-dlq', value });
  await l.rt.publisher.publish('TokenIssued', issued(act, 'u-dlq', 'after', 20));

  await l.waitFor('both good grants credited', async () => {
    const { rows } = await l.rt.pool.query(`select balance from account_balances where account = 'user:u-dlq:available'`);
    return rows[0]?.balance === 30;
  });
  t.pass('events after the bad messages were applied');

  // Both consumer groups (projector and crediting) dead-letter what they cannot read.
  const consumer = l.rt.kafka.consumer({ groupId: `${l.ns}.dlq-reader` });
  await consumer.connect();
  await consumer.subscribe({ topics: [l.rt.topics.deadLetter], fromBeginning: true });
  const seen: { value: Buffer; headers: Record<string, string> }[] = [];
  await new Promise<void>((resolve) => {
    void consumer.run({
      eachMessage: async ({ message }) => {
        const headers = Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)]));
        seen.push({ value: message.value ?? Buffer.alloc(0), headers });
        if (seen.length >= 8) resolve();
      },
    });
  });
  await consumer.disconnect();
  t.equal(seen.length, 8, 'four bad messages, dead-lettered once by each consumer group');
  const consumers = new Set(seen.map((s) => s.headers['dlq-consumer']));
  t.same([...consumers].sort(), [`${l.ns}.crediting`, `${l.ns}.ledger-projector`].sort());
  for (const s of seen) {
    t.equal(s.headers['dlq-source-topic'], l.rt.topics.wallet);
    t.match(s.headers['dlq-reason'], /./, 'says why');
    t.ok(garbage.some((g) => g.equals(s.value)), 'the original bytes are kept');
  }
});
