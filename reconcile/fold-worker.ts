// A worker thread of a whole-log audit. Started as the audit begins, so loading its modules
// overlaps the audit's own setup; folds the share of the log's partitions it is then sent
// (log-fold.ts) with its own Kafka consumer and registry client, reports progress, and posts
// the outcome.
import { parentPort, workerData } from 'node:worker_threads';
import type { Config } from '../infra/config.ts';
import { kafkaClient } from '../infra/kafka.ts';
import { foldRanges } from './log-fold.ts';
import { replayCodec, type PartitionRange } from './replay.ts';

const { cfg, clientId } = workerData as { cfg: Config; clientId: string };
const port = parentPort!;
port.once('message', async ({ ranges }: { ranges: PartitionRange[] }) => {
  let pending = 0;
  const outcome = await foldRanges(kafkaClient(cfg, clientId), replayCodec(cfg.schemaRegistryUrl), ranges, (n) => {
    pending += n;
    if (pending >= 20_000) {
      port.postMessage({ progress: pending });
      pending = 0;
    }
  });
  port.postMessage({ progress: pending });
  port.postMessage({ outcome }, [outcome.applied.keys.buffer as ArrayBuffer, outcome.applied.used.buffer as ArrayBuffer]);
  port.close();
});
