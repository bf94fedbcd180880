/**
 * Sampling the client cannot steer: with `audit.sample_success` below 1, a
 * request id the client chose is sampled like any other. Through a real
 * gateway, with request ids picked the way an attacker would have under
 * request-id hashing (ids the FNV coin always dropped).
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
import { sampleFraction } from './audit-log.js';

describe('audit sampling uses the gateway’s own randomness', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;

  before(async () => {
    upstream = await startUpstream();
    gw = await startTestGateway({
      audit: { sample_success: 0.5 },
      upstreams: { app: { url: upstream.url } },
      routes: [{ path: '/public', methods: ['GET'], upstream: 'app', auth: 'none' }],
    });
  });

  after(async () => {
    await gw.close();
    await upstream.close();
  });

  async function recorded(ids: readonly string[]): Promise<number> {
    await gw.running.audit.flush();
    const rows = await gw.running.store.query<{ request_id: string }>('select request_id from audit_events');
    return rows.filter((r) => ids.includes(r.request_id)).length;
  }

  it('records chosen request ids at the sampling rate', async () => {
    // Ids a client would pick if the request id decided: each one's hash says "drop".
    const chosen: string[] = [];
    for (let i = 0; chosen.length < 40; i++) {
      const id = `chosen-id-${i.toString().padStart(6, '0')}`;
      if (sampleFraction(id) >= 0.5) chosen.push(id);
    }
    for (const id of chosen) {
      const reply = await send(gw.url, '/public', { headers: { 'x-request-id': id } });
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['x-request-id'], id);
    }
    const kept = await recorded(chosen);
    // Expected 20 of 40 at 0.5; fewer than 5 has a probability below 1e-6.
    assert.ok(kept >= 5 && kept <= 35, `${kept} of ${chosen.length} chosen ids recorded`);
  });

  it('samples one repeated id independently on each request', async () => {
    const id = 'the-same-id-every-time';
    for (let i = 0; i < 40; i++) await send(gw.url, '/public', { headers: { 'x-request-id': id } });
    const kept = await recorded([id]);
    assert.ok(kept > 0 && kept < 40, `${kept} of 40 requests with one id recorded`);
  });
});
