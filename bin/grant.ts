// `npm run grant -- <userId> <amountFen> [activityId] [orderNo]`: sends one signed upstream grant
// to the running API with the development upstream key, and prints the request and the answer.
import { randomUUID } from 'node:crypto';
import { loadConfig } from '../infra/config.ts';
import { devUpstreamKey } from './secrets.ts';
import { signRequest } from '../api/auth/upstream-signature.ts';

const [userId = 'u-alice', amount = '88', activityId = 'demo-rain', orderNo = `demo-${randomUUID()}`] = process.argv.slice(2);
const cfg = loadConfig();
const body = JSON.stringify({ activityId, sceneId: 'demo-scene', orderNo, userId, amount: Number(amount), currency: 'CNY' });
const headers = { 'content-type': 'application/json', ...signRequest(devUpstreamKey(), 'POST', '/v1/grants', body) };
const url = `http://${cfg.apiHost}:${cfg.apiPort}/v1/grants`;
console.log(`curl -X POST ${url} ${Object.entries(headers).map(([k, v]) => `-H '${k}: ${v}'`).join(' ')} -d '${body}'\n`);
const res = await fetch(url, { method: 'POST', headers, body });
console.log(res.status, JSON.stringify(await res.json(), null, 2));
