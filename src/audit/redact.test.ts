import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createPathRedactor, createRedactor, isSensitiveName } from './redact.js';

const redact = createRedactor(['ssn']);
const redactPath = createPathRedactor();

const JWT =
  'eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJhbGljZSJ9.MEUCIQDx1s8ZcW6Hj3oF5u1h2Yk4mQ9lV0Yc8f5r3tRzGQIgW1';
const API_KEY = 'pcl_7f3KqL9mN2pR4sT6_vW8xY0zA1bC3dE5fG7hJ9kL2mN4pQ6rS8tU0vW2xY4zA1b2C3d4';

describe('redacting audit details', () => {
  it('removes a bearer token, whatever its form', () => {
    assert.equal(redact('Bearer abc.def-ghi_jkl~mno+pq/rs='), 'Bearer [redacted]');
    assert.equal(redact(`bad token: bearer ${JWT}`), 'bad token: bearer [redacted]');
  });

  it('removes a JWT found anywhere in the text, signed or encrypted', () => {
    assert.equal(redact(`kid not found in ${JWT}!`), 'kid not found in [redacted]!');
    const jwe =
      'eyJhbGciOiJSU0EtT0FFUCJ9.OKOawDo13gRp2o.48V1_ALb6US04U3b.5eym8TW_c8SuK0lt.XFBoMYUZodetZdvTiFvSkQ';
    assert.equal(redact(jwe), '[redacted]');
  });

  it('removes a Portcullis API key, even cut short', () => {
    assert.equal(redact(`unknown key ${API_KEY}`), 'unknown key pcl_[redacted]');
    assert.equal(redact('malformed key pcl_7f3KqL9m'), 'malformed key pcl_[redacted]');
  });

  it('removes password=, secrets and tokens in query, form and JSON syntax, keeping the field name', () => {
    assert.equal(
      redact('login failed password=hunter2&user=bob'),
      'login failed password=[redacted]&user=bob',
    );
    assert.equal(redact('{"client_secret":"abc","scope":"x"}'), '{"client_secret":"[redacted]","scope":"x"}');
    assert.equal(redact("db_password: 'p@ss word'"), "db_password: '[redacted]'");
    assert.equal(redact('X-Auth-Token: abc123'), 'X-Auth-Token: [redacted]');
    assert.equal(redact('refresh_token=r1; session=s2'), 'refresh_token=[redacted]; session=[redacted]');
  });

  it('removes the values of configured sensitive fields', () => {
    assert.equal(redact('{"ssn":"123-45-6789"}'), '{"ssn":"[redacted]"}');
    assert.equal(createRedactor()('{"ssn":"123-45-6789"}'), '{"ssn":"123-45-6789"}');
  });

  it('removes the password of a URL but keeps the rest', () => {
    assert.equal(
      redact('connect postgres://app:s3cret@db:5432/x failed'),
      'connect postgres://app:[redacted]@db:5432/x failed',
    );
  });

  it('removes Basic credentials', () => {
    assert.equal(redact('Authorization: Basic dXNlcjpwYXNzd29yZA=='), 'Authorization: Basic [redacted]');
  });

  it('removes long random-looking strings, but keeps ids, hashes and prose', () => {
    assert.equal(
      redact('opaque token Zk3hQ9vX2mLp8RtY4wNc6BdF1gJs5HaK was inactive'),
      'opaque token [redacted] was inactive',
    );
    const kept = [
      'request req_6f1c2d34-5a6b-4c7d-8e9f-0a1b2c3d4e5f denied by rule orders-owner',
      'trace 4bf92f3577b34da6a3ce929d0e0e4736, key key_7f3KqL9mN2pR4sT6',
      'sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
      'auth.invalid_credentials: the token has expired',
      'upstream answered 502 after 30000 ms',
    ];
    for (const text of kept) assert.equal(redact(text), text);
  });

  it('scrubs paths of tokens and keys but keeps ordinary segments', () => {
    assert.equal(redactPath('/orders/123/items/abc-def'), '/orders/123/items/abc-def');
    assert.equal(
      redactPath('/customers/Very-Long-Customer-Name-Segment'),
      '/customers/Very-Long-Customer-Name-Segment',
    );
    assert.equal(redactPath(`/callback/${JWT}`), '/callback/[redacted]');
    assert.equal(redactPath(`/keys/${API_KEY}/info`), '/keys/pcl_[redacted]/info');
    assert.equal(redactPath('/reset/Zk3hQ9vX2mLp8RtY4wNc6BdF1gJs5HaK'), '/reset/[redacted]');
    assert.equal(redactPath('/app;jsessionid=ABC123'), '/app;jsessionid=[redacted]');
  });

  it('tells sensitive detail keys from ordinary ones', () => {
    assert.equal(isSensitiveName('client_secret'), true);
    assert.equal(isSensitiveName('Password'), true);
    assert.equal(isSensitiveName('ssn', ['ssn']), true);
    assert.equal(isSensitiveName('scopes'), false);
    assert.equal(isSensitiveName('name'), false);
  });

  it('stays fast on long input without a match', () => {
    const text = 'a'.repeat(2048);
    assert.equal(redact(text), text);
  });
});

describe('redacting twice', () => {
  it('leaves already redacted text as it is', () => {
    const once = redact(`password=hunter2 Bearer ${JWT} token=${JWT}`);
    assert.equal(redact(once), once);
    assert.equal(once, 'password=[redacted] Bearer [redacted] token=[redacted]');
  });
});
