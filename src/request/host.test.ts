import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createHostCheck, normalizeHostPattern, parseHost } from './host.js';

type Valid = [sentence: string, value: string, hostname: string, port: number | undefined];
type Invalid = [sentence: string, value: string];

const VALID: Valid[] = [
  ['accepts a plain DNS name without a port', 'api.example.com', 'api.example.com', undefined],
  ['accepts a DNS name with a port', 'api.example.com:8443', 'api.example.com', 8443],
  ['folds an upper-case name to lower case', 'API.Example.COM', 'api.example.com', undefined],
  ['drops one trailing dot, which names the same host', 'api.example.com.', 'api.example.com', undefined],
  ['drops the trailing dot before a port', 'api.example.com.:443', 'api.example.com', 443],
  ['accepts a single-label name such as localhost', 'localhost', 'localhost', undefined],
  ['accepts localhost with a port', 'localhost:3000', 'localhost', 3000],
  ['accepts hyphens inside a label', 'my-api.ex-ample.com', 'my-api.ex-ample.com', undefined],
  ['accepts a label that starts with a digit', '1password.example.com', '1password.example.com', undefined],
  ['accepts an IDN written as an A-label', 'xn--bcher-kva.example', 'xn--bcher-kva.example', undefined],
  ['accepts a label of exactly 63 characters', `${'a'.repeat(63)}.test`, `${'a'.repeat(63)}.test`, undefined],
  [
    'accepts a name of exactly 253 characters',
    `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`,
    `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`,
    undefined,
  ],
  ['accepts a hex-looking label that is not the last one', '0x7f.example.com', '0x7f.example.com', undefined],
  ['accepts an IPv4 dotted quad', '192.0.2.1', '192.0.2.1', undefined],
  ['accepts an IPv4 dotted quad with a port', '127.0.0.1:8080', '127.0.0.1', 8080],
  ['accepts zero octets written as a single 0', '0.0.0.0', '0.0.0.0', undefined],
  ['accepts the highest octets', '255.255.255.255', '255.255.255.255', undefined],
  ['accepts a bracketed IPv6 loopback', '[::1]', '[::1]', undefined],
  ['accepts a bracketed IPv6 address with a port', '[2001:db8::1]:8443', '[2001:db8::1]', 8443],
  ['writes an IPv6 address in its RFC 5952 form', '[2001:DB8:0:0:0:0:0:1]', '[2001:db8::1]', undefined],
  ['accepts an IPv4-mapped IPv6 address', '[::ffff:192.0.2.1]', '[::ffff:c000:201]', undefined],
  ['accepts port 1, the lowest', 'example.com:1', 'example.com', 1],
  ['accepts port 65535, the highest', 'example.com:65535', 'example.com', 65535],
];

const INVALID: Invalid[] = [
  ['refuses an empty value', ''],
  ['refuses userinfo before the host', 'user@example.com'],
  ['refuses userinfo with a password before the host', 'good.test:80@evil.test'],
  ['refuses a bare @ between two names', 'a@b'],
  ['refuses a space inside the value', 'x y'],
  ['refuses a leading space', ' example.com'],
  ['refuses a trailing space', 'example.com '],
  ['refuses a tab', 'example.com\t'],
  ['refuses a CR LF that would inject a header', 'example.com\r\nx-injected: 1'],
  ['refuses a NUL byte', 'example.com\u0000.evil'],
  ['refuses a comma, as two joined Host headers would look', 'a,b'],
  ['refuses a comma-separated list with a space', 'good.test, evil.test'],
  ['refuses percent-encoding', 'ex%61mple.com'],
  ['refuses a path after the host', 'evil.test/@good.test'],
  ['refuses a backslash', 'evil.test\\good.test'],
  ['refuses an underscore', 'my_service.internal'],
  ['refuses non-ASCII letters', 'évil.test'],
  ['refuses an empty label', 'a..example.com'],
  ['refuses a leading dot', '.example.com'],
  ['refuses a lone dot', '.'],
  ['refuses two trailing dots', 'example.com..'],
  ['refuses a label that starts with a hyphen', '-bad.example.com'],
  ['refuses a label that ends with a hyphen', 'bad-.example.com'],
  ['refuses a label of 64 characters', `${'a'.repeat(64)}.test`],
  [
    'refuses a name of 254 characters',
    `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(62)}`,
  ],
  ['refuses a wildcard label', '*.example.com'],
  ['refuses an IPv4 octet with a leading zero, which some read as octal', '017.0.0.1'],
  ['refuses an IPv4 address with a zero-padded octet', '127.0.0.01'],
  ['refuses an IPv4 octet above 255', '256.0.0.1'],
  ['refuses a shortened IPv4 address', '127.1'],
  ['refuses an IPv4 address written as one decimal number', '2130706433'],
  ['refuses a hex IPv4 octet', '0x7f.0.0.1'],
  ['refuses an IPv4 address written as one hex number', '0x7f000001'],
  ['refuses five dotted numbers', '1.2.3.4.5'],
  ['refuses an IPv4 address with a trailing dot', '127.0.0.1.'],
  ['refuses a name whose last label is numeric', 'example.123'],
  ['refuses a name whose last label is hex', 'example.0x1f'],
  ['refuses an IPv6 address without brackets', '::1'],
  ['refuses an IPv6 address with an unclosed bracket', '[::1'],
  ['refuses something in brackets that is not IPv6', '[not-ipv6]'],
  ['refuses an IPv4 address in brackets', '[127.0.0.1]'],
  ['refuses an IPv6 zone id, percent-encoded', '[fe80::1%25eth0]'],
  ['refuses an IPv6 zone id, raw', '[fe80::1%eth0]'],
  ['refuses an IPvFuture literal', '[v1.fe80::a+en1]'],
  ['refuses text after the closing bracket', '[::1]x'],
  ['refuses a second closing bracket', '[::1]]'],
  ['refuses a bracket inside a name', 'exa[mple.com'],
  ['refuses an empty port', 'example.com:'],
  ['refuses a port and nothing before it', ':8080'],
  ['refuses an empty port after an IPv6 address', '[::1]:'],
  ['refuses port 0', 'example.com:0'],
  ['refuses port 65536', 'example.com:65536'],
  ['refuses a port with a leading zero', 'example.com:0443'],
  ['refuses a port that is not digits', 'x:abc'],
  ['refuses a signed port', 'example.com:+80'],
  ['refuses two ports', 'example.com:80:81'],
  ['refuses a very long value before looking at it', `${'a.'.repeat(200)}com`],
];

describe('parsing a Host header', () => {
  for (const [sentence, value, hostname, port] of VALID) {
    it(sentence, () => {
      assert.deepEqual(parseHost(value), { hostname, port });
    });
  }
  for (const [sentence, value] of INVALID) {
    it(sentence, () => {
      assert.equal(parseHost(value), undefined, JSON.stringify(value));
    });
  }

  it('tests at least forty cases', () => {
    assert.ok(VALID.length + INVALID.length >= 40);
  });
});

describe('normalizing an allow-list entry', () => {
  it('lower-cases an exact name and drops its trailing dot', () => {
    assert.equal(normalizeHostPattern('API.Example.com.'), 'api.example.com');
  });

  it('keeps a one-label wildcard, lower case', () => {
    assert.equal(normalizeHostPattern('*.Example.COM'), '*.example.com');
  });

  it('accepts an IPv6 address with or without brackets, in brackets', () => {
    assert.equal(normalizeHostPattern('::1'), '[::1]');
    assert.equal(normalizeHostPattern('[0:0::1]'), '[::1]');
  });

  it('refuses a port, since the port is never compared', () => {
    assert.equal(normalizeHostPattern('api.example.com:443'), undefined);
  });

  it('refuses a wildcard in any other place than a whole first label', () => {
    for (const p of ['*', '*.', 'a*.example.com', 'api.*.example.com', '*example.com', '**.example.com']) {
      assert.equal(normalizeHostPattern(p), undefined, p);
    }
  });

  it('refuses a wildcard over an IP address', () => {
    assert.equal(normalizeHostPattern('*.0.0.1'), undefined);
    assert.equal(normalizeHostPattern('*.[::1]'), undefined);
  });

  it('refuses what the Host parser refuses', () => {
    for (const p of ['', 'a@b', 'x y', 'a,b', '127.1', 'my_service']) {
      assert.equal(normalizeHostPattern(p), undefined, p);
    }
  });
});

describe('checking a Host header against an allow-list', () => {
  it('lets any well-formed host through when there is no allow-list', () => {
    for (const check of [createHostCheck(undefined), createHostCheck([])]) {
      assert.equal(check('anything.example'), true);
      assert.equal(check('[::1]:80'), true);
    }
  });

  it('refuses a malformed or missing host even without an allow-list', () => {
    const check = createHostCheck(undefined);
    for (const h of [undefined, '', 'a@b', 'x y', 'a,b', '127.1']) assert.equal(check(h), false, String(h));
  });

  it('accepts an exact name whatever its case, port or trailing dot', () => {
    const check = createHostCheck(['api.example.com']);
    for (const h of ['api.example.com', 'API.EXAMPLE.COM', 'api.example.com:8443', 'api.example.com.']) {
      assert.equal(check(h), true, h);
    }
  });

  it('refuses a name that is not listed, including look-alikes', () => {
    const check = createHostCheck(['api.example.com']);
    for (const h of [
      'evil.example',
      'example.com',
      'x.api.example.com',
      'api.example.com.evil.example',
      'api-example.com',
      'api.example.co',
    ]) {
      assert.equal(check(h), false, h);
    }
  });

  it('matches a wildcard against exactly one more label', () => {
    const check = createHostCheck(['*.example.com']);
    assert.equal(check('a.example.com'), true);
    assert.equal(check('A.Example.Com:8080'), true);
    assert.equal(check('example.com'), false);
    assert.equal(check('a.b.example.com'), false);
    assert.equal(check('aexample.com'), false);
    assert.equal(check('a.example.com.evil.example'), false);
  });

  it('combines exact names and wildcards', () => {
    const check = createHostCheck(['example.com', '*.example.com', '127.0.0.1', '::1']);
    assert.equal(check('example.com'), true);
    assert.equal(check('www.example.com'), true);
    assert.equal(check('127.0.0.1:8080'), true);
    assert.equal(check('[::1]:8080'), true);
    assert.equal(check('[0:0::1]'), true);
    assert.equal(check('127.0.0.2'), false);
  });

  it('refuses a malformed host that contains an allowed name', () => {
    const check = createHostCheck(['api.example.com']);
    for (const h of [
      'evil.test@api.example.com',
      'api.example.com@evil.test',
      'api.example.com,evil.test',
      'api.example.com evil.test',
      'api.example.com/evil',
      undefined,
    ]) {
      assert.equal(check(h), false, String(h));
    }
  });

  it('throws on an entry that is not a host name or wildcard', () => {
    assert.throws(() => createHostCheck(['api.example.com', 'a@b']), TypeError);
    assert.throws(() => createHostCheck(['api.example.com:443']), TypeError);
  });
});
