/**
 * One attack, one alert (issue 18, item 5), through a real gateway: 2,000
 * distinct invalid tokens from 50 IPs. With a threshold of 1 every token and
 * every IP is a finding (2,050 of them, which used to be 2,050 alerts); they
 * fold into one alert about the attacked route, with its sources counted,
 * updated once per cooldown while the attack runs, then resolved.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';
import { type Receiver, startReceiver } from './test-support/receiver.js';

const TOKENS = 2000;
const SOURCES = 50;

function get(agent: Agent, url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('a flood of 2,000 distinct invalid tokens', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;
  let receiver: Receiver;
  /** What the webhooks delivered, in order. */
  const delivered = () => receiver.received.map((r) => r.body);

  before(async () => {
    receiver = await startReceiver();
    process.env.PC_FLOOD_ALERT_SECRET = randomBytes(32).toString('hex');
    upstream = await startUpstream();
    gw = await startTestGateway({
      listen: { trusted_proxies: ['127.0.0.1'] },
      auth: {
        brute_force: { max_failures: 1_000_000, max_failures_per_ip: 1_000_000 },
        jwt: {
          providers: [
            {
              name: 'idp',
              issuer: 'urn:test',
              audience: ['api'],
              algorithms: ['HS256'],
              hmac_secret: '${env:PC_FLOOD_ALERT_SECRET}',
            },
          ],
        },
      },
      anomaly: {
        detectors: {
          auth_failures: { threshold: 1 },
          rate_spike: { enabled: false },
          enumeration: { enabled: false },
          gateway_spike: { enabled: false },
        },
      },
      alerts: {
        cooldown: '1s',
        webhooks: [
          {
            name: 'soc',
            url: receiver.url,
            format: 'json',
          },
        ],
      },
      upstreams: { app: { url: upstream.url } },
      routes: [{ path: '/orders', methods: ['GET'], upstream: 'app', authorize: 'any-authenticated' }],
    });
  });

  after(async () => {
    await gw.close();
    await upstream.close();
    await receiver.close();
  });

  it('raises one alert, updates it once per cooldown, then resolves it', async (t) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    let next = 0;
    const started = Date.now();
    const statuses: Record<number, number> = {};
    const worker = async () => {
      for (let i = next++; i < TOKENS; i = next++) {
        const token = `eyJhbGciOiJIUzI1NiJ9.${Buffer.from(JSON.stringify({ sub: `u${i}`, iss: 'urn:test' })).toString('base64url')}.${randomBytes(32).toString('base64url')}`;
        const status = await get(agent, `${gw.url}/orders`, {
          authorization: `Bearer ${token}`,
          'x-forwarded-for': `203.0.113.${i % SOURCES}`,
        });
        statuses[status] = (statuses[status] ?? 0) + 1;
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    const attackMs = Date.now() - started;
    agent.destroy();
    assert.deepEqual(statuses, { 401: TOKENS });
    // Quiet for more than a cooldown: the resolution follows.
    const deadline = Date.now() + 10_000;
    while (!delivered().some((r) => String(r.summary).startsWith('Resolved')) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const alerts = await gw.running.store.query<{
      id: string;
      count: number;
      subject_kind: string;
      subject_id: string;
    }>("select id, count, subject_kind, subject_id from alerts where detector = 'auth_failures'");
    assert.equal(alerts.length, 1, 'one attack, one alert');
    assert.equal(alerts[0]!.subject_kind, 'route');
    const raised = delivered().filter((r) => !/^(Ongoing|Resolved)/.test(String(r.summary)));
    const updates = delivered().filter((r) => String(r.summary).startsWith('Ongoing'));
    const resolved = delivered().filter((r) => String(r.summary).startsWith('Resolved'));
    assert.equal(raised.length, 1, 'one alert raised');
    assert.equal(resolved.length, 1, 'one resolution');
    // At most one update per cooldown (1 s) of attack, plus the one in progress.
    assert.ok(
      updates.length <= Math.ceil(attackMs / 1000) + 1,
      `${updates.length} updates in ${attackMs} ms`,
    );
    const last = resolved[0]!;
    // Sources are counted up to 1,000 per alert; every finding is counted.
    assert.equal((last.evidence as Record<string, unknown>).sources, Math.min(TOKENS + SOURCES, 1000));
    assert.equal((last.evidence as Record<string, unknown>).findings, TOKENS + SOURCES);
    const audited = await gw.running.store.query<{ action: string }>(
      "select action from audit_events where action like 'alert.%'",
    );
    assert.equal(audited.filter((a) => a.action === 'alert.raised').length, 1);
    t.diagnostic(
      `${TOKENS} invalid tokens from ${SOURCES} IPs in ${attackMs} ms: ${TOKENS + SOURCES} findings, ${alerts.length} alert (count ${alerts[0]!.count}), ${updates.length} updates, ${resolved.length} resolution, ${delivered().length} webhook deliveries`,
    );
  });
});
