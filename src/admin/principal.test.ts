import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { claimValues, highestRole } from './principal.js';

const roles = { 'pc-viewers': 'viewer', 'pc-operators': 'operator', 'pc-admins': 'admin' } as const;

describe('the admin role of a JWT', () => {
  it('is the highest role its claim values map to', () => {
    assert.equal(highestRole(['pc-viewers', 'pc-admins', 'pc-operators'], roles), 'admin');
    assert.equal(highestRole(['pc-operators', 'pc-viewers'], roles), 'operator');
    assert.equal(highestRole(['marketing', 42, null], roles), undefined);
  });

  it('is not read from inherited members such as constructor or __proto__', () => {
    assert.equal(highestRole(['constructor', '__proto__', 'toString'], roles), undefined);
  });

  it('reads a claim by name, even one with dots, before a dotted path', () => {
    const claims = {
      'https://example.com/roles': ['pc-admins'],
      realm_access: { roles: ['pc-viewers', 'other'] },
      single: 'pc-operators',
    };
    assert.deepEqual(claimValues(claims, 'https://example.com/roles'), ['pc-admins']);
    assert.deepEqual(claimValues(claims, 'realm_access.roles'), ['pc-viewers', 'other']);
    assert.deepEqual(claimValues(claims, 'single'), ['pc-operators']);
    assert.deepEqual(claimValues(claims, 'realm_access.missing'), []);
    assert.deepEqual(claimValues(claims, 'single.length'), []);
  });
});
