/**
 * Detection, alerting, automatic blocks and metrics through a real gateway:
 * credential stuffing from one IP raises one alert to a real webhook, the IP
 * is blocked everywhere, and /metrics shows it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';
import { send } from '../test-support/http.js';
import { type Receiver, startReceiver } from './test-support/receiver.js';

describe('credential stuffing through the gateway', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;
  let receiver: Receiver;
  /** What the webhooks delivered, in order. */
  const delivered = () => receiver.received.map((r) => r.body);

  before(async () => {
    receiver = await startReceiver();
    upstream = await startUpstream();
    gw = await startTestGateway({
      listen: { trusted_proxies: ['127.0.0.1'] },
      auth: { api_keys: {}, brute_force: { max_failures: 1000 } },
      anomaly: {
        detectors: { auth_failures: { threshold: 20, block: { enabled: true, for: '10m', status: 429 } } },
      },
      alerts: {
        webhooks: [
          {
            name: 'soc',
            url: receiver.url,
            format: 'json',
          },
        ],
      },
      upstreams: { app: { url: upstream.url } },
      routes: [
        { path: '/orders', methods: ['GET'], upstream: 'app', authorize: 'any-authenticated' },
        { path: '/public', methods: ['GET'], upstream: 'app', auth: 'none' },
      ],
    });
  });

  after(async () => {
    await gw.close();
    await upstream.close();
    await receiver.close();
  });

  const attacker = '203.0.113.66';

  it('raises one alert and blocks the attacking IP, and only it', async () => {
    for (let i = 0; i < 60; i++) {
      const reply = await send(gw.url, '/orders', {
        headers: { 'x-api-key': `stolen-key-${i}`, 'x-forwarded-for': attacker },
      });
      if (reply.status === 429) break;
      assert.equal(reply.status, 401);
    }
    for (let i = 0; i < 100 && delivered().length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(delivered().length, 1, JSON.stringify(delivered()));
    assert.match(JSON.stringify(delivered()[0]), /auth_failures/);
    assert.match(JSON.stringify(delivered()[0]), new RegExp(attacker.replaceAll('.', '\\.')));
    const blocked = await send(gw.url, '/public', { headers: { 'x-forwarded-for': attacker } });
    assert.equal(blocked.status, 429);
    assert.equal(blocked.json().code, 'client.blocked');
    assert.ok(Number(blocked.headers['retry-after']) > 0);
    const bystander = await send(gw.url, '/public', { headers: { 'x-forwarded-for': '198.51.100.9' } });
    assert.equal(bystander.status, 200);
  });

  it('counts it all in /metrics on the admin listener', async () => {
    const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    assert.match(text, /portcullis_requests_total\{[^}]*decision="deny"[^}]*\} \d+/);
    assert.match(
      text,
      /portcullis_auth_failures_total\{reason="auth\.invalid_credentials"\} ([2-9]\d|1\d\d)/,
    );
    assert.match(text, /portcullis_blocked_requests_total/);
    assert.doesNotMatch(text, /stolen-key|203\.0\.113\.66/);
  });
});
