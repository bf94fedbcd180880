/** Console sessions: random ids kept hashed, idle and absolute expiry, a bound on their number. */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import type { AdminTokenRecord } from '../tokens/store.js';
import { SessionStore, sameSecret, sessionIdOf } from './sessions.js';

const token = (id: string): AdminTokenRecord => ({
  id,
  name: id,
  role: 'viewer',
  createdAt: 0,
  createdBy: 'test',
  revokedAt: undefined,
  lastUsedAt: undefined,
});

const settings = { idleMs: 1000, absoluteMs: 5000, max: 3 };

describe('console sessions', () => {
  it('make a fresh random id and CSRF token for each login, and find the session only by its id', () => {
    const store = new SessionStore(settings, () => 0);
    const a = store.create(token('adt_a'));
    const b = store.create(token('adt_a'));
    assert.match(a.id, /^[A-Za-z0-9_-]{43}$/);
    assert.notEqual(a.id, b.id);
    assert.notEqual(a.session.csrf, b.session.csrf);
    assert.notEqual(a.session.key, a.id, 'the id itself is kept');
    assert.equal(store.get(a.id), a.session);
    // One character changed (never to itself: an id may already end in "A").
    const other = `${a.id.slice(0, -1)}${a.id.endsWith('A') ? 'B' : 'A'}`;
    assert.equal(store.get(other), undefined);
  });

  it('end after the idle time without use, and use restarts it, up to the absolute limit', () => {
    let now = 0;
    const store = new SessionStore(settings, () => now);
    const { id } = store.create(token('adt_a'));
    for (now = 900; now < 5000; now += 900) assert.ok(store.get(id), `alive at ${now}`);
    now = 5000;
    assert.equal(store.get(id), undefined, 'alive past the absolute limit');
    const other = store.create(token('adt_b'));
    now += 1000;
    assert.equal(store.get(other.id), undefined, 'alive past the idle time');
  });

  it('keep at most max sessions, dropping the oldest, and end every session of a revoked token', () => {
    const store = new SessionStore(settings, () => 0);
    const first = store.create(token('adt_a'));
    const rest = [store.create(token('adt_b')), store.create(token('adt_b')), store.create(token('adt_c'))];
    assert.equal(store.size, 3);
    assert.equal(store.get(first.id), undefined);
    store.deleteToken('adt_b');
    assert.equal(store.size, 1);
    assert.ok(store.get(rest[2]!.id));
  });

  it('read the session id only from a well-formed __Host-pcl_session cookie', () => {
    const req = (cookie?: string) => ({ headers: cookie === undefined ? {} : { cookie } }) as IncomingMessage;
    const id = 'A'.repeat(43);
    assert.equal(sessionIdOf(req(`theme=dark; pcl_session=x; __Host-pcl_session=${id}`)), id);
    assert.equal(sessionIdOf(req('__Host-pcl_session=short')), '');
    assert.equal(sessionIdOf(req('other=1')), undefined);
    assert.equal(sessionIdOf(req()), undefined);
  });

  it('compare CSRF tokens whole', () => {
    assert.ok(sameSecret('abc', 'abc'));
    assert.ok(!sameSecret('abd', 'abc'));
    assert.ok(!sameSecret('ab', 'abc'));
    assert.ok(!sameSecret(undefined, 'abc'));
  });
});
