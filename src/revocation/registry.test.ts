import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Principal } from '../contracts/principal.js';
import { RevocationRegistry } from './registry.js';

const T = 1_700_000_000_000;
const token = (claims: Record<string, unknown>, id = 'alice'): Principal => ({
  kind: 'jwt',
  id,
  provider: 'jwt:idp',
  scopes: [],
  roles: [],
  claims: { iss: 'https://idp', iat: T / 1000 - 60, ...claims },
  tenant: undefined,
});

describe('the revocation registry', () => {
  it('revokes one jti, for one issuer or any', () => {
    const r = new RevocationRegistry(() => T);
    r.apply({ kind: 'jti', subject: 'j1', issuer: 'https://idp', revokedAt: T, expiresAt: T + 1000 });
    r.apply({ kind: 'jti', subject: 'j2', issuer: '', revokedAt: T, expiresAt: T + 1000 });
    assert.equal(r.isRevoked(token({ jti: 'j1' })), true);
    assert.equal(r.isRevoked(token({ jti: 'j1', iss: 'https://other' })), false);
    assert.equal(r.isRevoked(token({ jti: 'j2', iss: 'https://other' })), true);
    assert.equal(r.isRevoked(token({ jti: 'j3' })), false);
  });

  it('revokes a subject’s tokens issued up to the revocation, not later ones', () => {
    const r = new RevocationRegistry(() => T);
    r.apply({ kind: 'sub', subject: 'alice', issuer: 'https://idp', revokedAt: T, expiresAt: T + 1000 });
    assert.equal(r.isRevoked(token({})), true);
    assert.equal(r.isRevoked(token({ iat: T / 1000 + 1 })), false);
    assert.equal(r.isRevoked(token({}, 'bob')), false);
    // The same sub from another issuer is another principal.
    assert.equal(r.isRevoked(token({ iss: 'https://other' })), false);
    // A token without iat cannot show it is newer.
    assert.equal(r.isRevoked(token({ iat: undefined })), true);
  });

  it('revokes a client’s tokens by client_id or azp', () => {
    const r = new RevocationRegistry(() => T);
    r.apply({ kind: 'client', subject: 'c1', issuer: '', revokedAt: T, expiresAt: T + 1000 });
    assert.equal(r.isRevoked(token({ client_id: 'c1' }, 'svc')), true);
    assert.equal(r.isRevoked(token({ azp: 'c1' }, 'svc')), true);
    assert.equal(r.isRevoked(token({ client_id: 'c2' }, 'svc')), false);
  });

  it('revokes tokens issued before a time', () => {
    const r = new RevocationRegistry(() => T);
    r.apply({
      kind: 'before',
      subject: '',
      issuer: 'https://idp',
      revokedAt: T - 30_000,
      expiresAt: T + 1000,
    });
    assert.equal(r.isRevoked(token({ iat: T / 1000 - 60 })), true);
    assert.equal(r.isRevoked(token({ iat: T / 1000 - 10 })), false);
    assert.equal(r.isRevoked(token({ iss: 'https://other' })), false);
  });

  it('forgets revocations once they expire, and never touches API keys', () => {
    let now = T;
    const r = new RevocationRegistry(() => now);
    r.apply({ kind: 'sub', subject: 'alice', issuer: '', revokedAt: T, expiresAt: T + 1000 });
    r.apply({ kind: 'sub', subject: 'key_1', issuer: '', revokedAt: T, expiresAt: T + 1000 });
    assert.equal(r.isRevoked({ ...token({}, 'key_1'), kind: 'api_key', provider: undefined }), false);
    now = T + 1001;
    assert.equal(r.isRevoked(token({})), false);
    r.prune();
    assert.equal(r.size, 0);
  });
});
