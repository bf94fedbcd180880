import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crc32 } from 'node:zlib';
import {
  API_KEY_LENGTH,
  API_KEY_PREFIX,
  formatApiKey,
  generateApiKey,
  isApiKeyId,
  parseApiKey,
} from './format.js';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** The checksum computed independently of the code under test. */
function withChecksum(body: string): string {
  let n = crc32(body);
  let out = '';
  for (let i = 0; i < 6; i++, n = Math.floor(n / 62)) out = ALPHABET[n % 62] + out;
  return body + out;
}

/** The same character moved one step along the alphabet. */
function typo(key: string, at: number): string {
  const c = key[at]!;
  const next = c === '_' ? '-' : ALPHABET[(ALPHABET.indexOf(c) + 1) % ALPHABET.length]!;
  return key.slice(0, at) + next + key.slice(at + 1);
}

describe('the API key format', () => {
  it('round-trips a generated key to its id and secret', () => {
    const { id, secret, key } = generateApiKey();
    assert.equal(key.length, API_KEY_LENGTH);
    assert.ok(key.startsWith(API_KEY_PREFIX));
    assert.match(key, /^pcl_[0-9A-Za-z]{16}_[0-9A-Za-z]{49}$/);
    assert.ok(isApiKeyId(id));
    assert.deepEqual(parseApiKey(key), { id, secret });
    assert.equal(formatApiKey(id, secret), key);
  });

  it('carries at least 256 bits of secret in every key', () => {
    const { secret } = generateApiKey();
    assert.ok(secret.length * Math.log2(62) >= 256);
  });

  it('never generates the same id or secret twice in a thousand keys', () => {
    const keys = Array.from({ length: 1000 }, generateApiKey);
    assert.equal(new Set(keys.map((k) => k.id)).size, 1000);
    assert.equal(new Set(keys.map((k) => k.secret)).size, 1000);
  });

  it('uses every base62 character, so no character is favoured', () => {
    const seen = new Set(
      Array.from({ length: 200 }, () => generateApiKey().secret)
        .join('')
        .split(''),
    );
    assert.equal(seen.size, 62);
  });

  it('rejects every single-character typo through the checksum', () => {
    const { key } = generateApiKey();
    for (let at = API_KEY_PREFIX.length; at < key.length; at++) {
      assert.equal(parseApiKey(typo(key, at)), undefined, `typo at ${at} accepted`);
    }
  });

  it('rejects two neighbouring characters swapped', () => {
    const { key } = generateApiKey();
    for (let at = API_KEY_PREFIX.length; at < key.length - 1; at++) {
      if (key[at] === key[at + 1]) continue;
      const swapped = key.slice(0, at) + key[at + 1] + key[at] + key.slice(at + 2);
      assert.equal(parseApiKey(swapped), undefined, `swap at ${at} accepted`);
    }
  });

  it('rejects a truncated key and a key with a character appended', () => {
    const { key } = generateApiKey();
    assert.equal(parseApiKey(key.slice(0, -1)), undefined);
    assert.equal(parseApiKey(key.slice(0, 30)), undefined);
    assert.equal(parseApiKey(`${key}0`), undefined);
    assert.equal(parseApiKey(''), undefined);
  });

  it('rejects a key with another prefix, even one whose checksum matches', () => {
    const { key } = generateApiKey();
    const body = key.slice(4, -6);
    assert.equal(withChecksum(`pcl_${body}`), key);
    assert.equal(parseApiKey(withChecksum(`ghp_${body}`)), undefined);
    assert.equal(parseApiKey(withChecksum(`PCL_${body}`)), undefined);
    assert.equal(parseApiKey(`ghp_${key.slice(4)}`), undefined);
  });

  it('rejects surrounding whitespace rather than guessing', () => {
    const { key } = generateApiKey();
    assert.equal(parseApiKey(` ${key.slice(1)}`), undefined);
    assert.equal(parseApiKey(`${key.slice(0, -1)}\n`), undefined);
  });

  it('rejects an overlong input by its length alone, quickly', () => {
    const huge = `pcl_${'a'.repeat(10_000_000)}`;
    const started = performance.now();
    for (let i = 0; i < 1000; i++) assert.equal(parseApiKey(huge), undefined);
    assert.ok(performance.now() - started < 50, 'an overlong input was scanned');
  });

  it('rejects characters outside base62 in the id or secret', () => {
    const { key } = generateApiKey();
    assert.equal(parseApiKey(`${key.slice(0, 10)}-${key.slice(11)}`), undefined);
    assert.equal(parseApiKey(`${key.slice(0, 30)}é${key.slice(31)}`), undefined);
  });

  it('refuses to format an id or secret of the wrong shape', () => {
    const { id, secret } = generateApiKey();
    const wrongShape = { name: 'TypeError', message: 'not an API key id and secret' };
    assert.throws(() => formatApiKey('cli_0123456789abcdef', secret), wrongShape);
    assert.throws(() => formatApiKey(id, `${secret}x`), wrongShape);
  });
});
