/**
 * Detection, alerting, automatic blocks and metrics through a real gateway:
 * credential stuffing from one IP raises one alert to a real webhook, the IP
 * is blocked everywhere, and /metrics shows it.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';
import { send } from '../test-support/http.js';

describe('credential stuffing through the gateway', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;
  let receiver: Server;
  const received: Record<string, unknown>[] = [];

  before(async () => {
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        received.push(JSON.parse(body) as Record<string, unknown>);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
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
            url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`,
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
    receiver.closeAllConnections();
    receiver.close();
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
    for (let i = 0; i < 100 && received.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(received.length, 1, JSON.stringify(received));
    assert.match(JSON.stringify(received[0]), /auth_failures/);
    assert.match(JSON.stringify(received[0]), new RegExp(attacker.replaceAll('.', '\\.')));
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
