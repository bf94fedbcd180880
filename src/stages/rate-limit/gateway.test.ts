/** Two real gateways sharing one Redis: one limit, counted across both. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { ConfigSchema } from '../../config/schema.js';
import { STAGE_FACTORIES } from '../../pipeline/index.js';
import {
  redisSkipMessage,
  requireSharedRedis,
  SHARED_REDIS_URL,
} from '../../ratelimit/test-support/redis.js';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../../test-support/gateway.js';
import { send } from '../../test-support/http.js';
import { rateLimitStage } from './index.js';

const wired = 'rate_limit' in ConfigSchema.properties && STAGE_FACTORIES.includes(rateLimitStage);
const sharedUp = wired ? await requireSharedRedis() : false;
const skip = !wired
  ? 'rate limiting is not wired into the config and pipeline yet (src/ratelimit/INTEGRATION.md)'
  : sharedUp
    ? false
    : redisSkipMessage();
const PREFIX = `portcullis-test-${randomBytes(6).toString('hex')}:`;

describe('two gateways sharing one Redis', { skip }, () => {
  const started: { close(): Promise<void> }[] = [];
  after(async () => {
    for (const s of started) await s.close();
    const client = new Redis(SHARED_REDIS_URL);
    const keys = await client.keys(`${PREFIX}*`);
    if (keys.length > 0) await client.del(...keys);
    await client.quit();
  });

  it('admit no more in total than the shared limit under concurrent load from both', async () => {
    const upstream: TestUpstream = await startUpstream();
    started.push(upstream);
    const config = {
      rate_limit: {
        backend: 'redis',
        redis: { url: SHARED_REDIS_URL, key_prefix: PREFIX, on_failure: 'fail-closed' },
        limits: { per_ip: { key: ['ip'], rate: '60/h', all_routes: true } },
      },
      upstreams: { orders: { url: upstream.url } },
      routes: [{ name: 'orders', path: '/orders', methods: ['GET'], upstream: 'orders', auth: 'none' }],
    };
    const a: TestGateway = await startTestGateway(config);
    started.push(a);
    const b: TestGateway = await startTestGateway(config);
    started.push(b);
    const replies = await Promise.all(
      Array.from({ length: 200 }, (_, i) => send(i % 2 === 0 ? a.url : b.url, '/orders')),
    );
    const admitted = replies.filter((r) => r.status === 200).length;
    // 60/h refills one unit a minute: none while this test runs.
    assert.equal(admitted, 60);
    assert.equal(replies.filter((r) => r.status === 429).length, 140);
    const ok = replies.find((r) => r.status === 200)!;
    assert.equal(ok.headers['ratelimit-policy'], '"per_ip";q=60;w=3600');
    const refused = replies.find((r) => r.status === 429)!;
    assert.equal(refused.json<{ code: string }>().code, 'rate_limit.exceeded');
    assert.ok(Number(refused.headers['retry-after']) >= 1);
    assert.equal(upstream.requests.length, 60, 'a refused request never reaches the upstream');
    const ready = await send(a.adminUrl, '/readyz');
    assert.equal(ready.status, 200);
  });
});
