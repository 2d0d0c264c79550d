// `npm run draw -- <userId> [activityId] [sceneId] [drawId]`: sends one signed upstream lottery
// draw to the running API with the development upstream key, and prints the answer.
import { randomUUID } from 'node:crypto';
import { loadConfig } from '../infra/config.ts';
import { devUpstreamKey } from './secrets.ts';
import { signRequest } from '../api/auth/upstream-signature.ts';

const [userId = 'u-alice', activityId = 'demo-shake', sceneId = 'shake', drawId = `demo-${randomUUID()}`] = process.argv.slice(2);
const cfg = loadConfig();
const body = JSON.stringify({ activityId, sceneId, userId, drawId });
const headers = { 'content-type': 'application/json', ...signRequest(devUpstreamKey(), 'POST', '/v1/draws', body) };
const res = await fetch(`http://${cfg.apiHost}:${cfg.apiPort}/v1/draws`, { method: 'POST', headers, body });
console.log(res.status, JSON.stringify(await res.json(), null, 2));
