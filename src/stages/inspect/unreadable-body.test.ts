import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../../test-support/gateway.js';
import { send } from '../../test-support/http.js';

/**
 * A body that declares a type the upstream parses (multipart, a form, JSON, XML) but that the
 * gateway could not read as one is refused on an inspected route: its raw text is not what the
 * upstream will read (a file name's path, JSON escapes), so inspecting it would let through what
 * the upstream then decodes. Found with the CRS test 930110-11 (`filename="..\1.7z"`, 200).
 */
describe('bodies the gateway cannot read as their Content-Type says', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;
  const BOUNDARY = 'b0undary';
  const multipart = (disposition: string) =>
    [
      `--${BOUNDARY}`,
      `Content-Disposition: form-data; ${disposition}`,
      'Content-Type: application/octet-stream',
      '',
      'BINARYDATA',
      `--${BOUNDARY}--`,
      '',
    ].join('\r\n');
  const post = (route: string, type: string, body: string) =>
    send(gw.url, route, { method: 'POST', headers: { 'content-type': type }, body });
  /** A multipart body of one file part, to the route. */
  const upload = (route: string, disposition: string) =>
    post(route, `multipart/form-data; boundary=${BOUNDARY}`, multipart(disposition));
  const nested = (depth: number, leaf: string) =>
    `${'{"a":'.repeat(depth)}${JSON.stringify(leaf)}${'}'.repeat(depth)}`;

  before(async () => {
    upstream = await startUpstream();
    const route = (name: string, path: string, mode: string) => ({
      name,
      path,
      methods: ['POST'],
      upstream: 'api',
      auth: 'none',
      body_limit: '1mb',
      inspection: { mode },
    });
    gw = await startTestGateway({
      upstreams: { api: { url: upstream.url } },
      routes: [route('blocking', '/upload', 'block'), route('watching', '/watched', 'monitor')],
    });
  });
  after(async () => {
    await gw.close();
    await upstream.close();
  });

  it('refuses a multipart file name with a backslash path, which readers split differently, with 400', async () => {
    const before = upstream.requests.length;
    const r = await upload('/upload', 'name="file"; filename="..\\1.7z"');
    assert.equal(r.status, 400);
    assert.equal(r.headers['content-type'], 'application/problem+json');
    assert.equal(r.json().code, 'input.invalid');
    assert.equal(upstream.requests.length, before, 'the body never reached the upstream');
  });

  it('lets an ordinary upload through, and still inspects its file name', async () => {
    const ok = await upload('/upload', 'name="file"; filename="report 2024.pdf"');
    assert.equal(ok.status, 200);
    const traversal = await upload('/upload', 'name="file"; filename="../../etc/passwd"');
    assert.equal(traversal.status, 403);
  });

  it('refuses JSON past the route’s depth limit, whose escaped payload the raw text hides, with 400', async () => {
    // The upstream decodes \u0027 to a quote; the raw text only has the escape.
    const r = await post('/upload', 'application/json', nested(40, '\u0027 OR 1=1-- '));
    assert.equal(r.status, 400);
    assert.equal(r.json().code, 'input.invalid');
    const shallow = await post('/upload', 'application/json', nested(5, 'a plain note'));
    assert.equal(shallow.status, 200);
  });

  it('refuses malformed JSON and XML on an inspected route, and passes well-formed ones', async () => {
    assert.equal((await post('/upload', 'application/json', '{"note": "unterminated')).status, 400);
    assert.equal((await post('/upload', 'application/xml', '<order><id>1</id>')).status, 400);
    assert.equal((await post('/upload', 'application/json', '{"note": "fine"}')).status, 200);
    assert.equal((await post('/upload', 'application/xml', '<order><id>1</id></order>')).status, 200);
  });

  it('passes a form in a charset the CRS allows, inspecting its raw text, and refuses one in another', async () => {
    const form = (charset: string, body: string) =>
      post('/upload', `application/x-www-form-urlencoded; charset=${charset}`, body);
    assert.equal((await form('iso-8859-1', 'name=Jos%E9&city=M%FCnchen')).status, 200);
    // A stray % (a hand-written client's "24%") is kept by form readers: inspected, not refused.
    assert.equal((await form('utf-8', 'discount=24%&item=running+shoes')).status, 200);
    assert.equal((await form('utf-8', "note=24%+and+1'+UNION+SELECT+password+FROM+users--")).status, 403);
    assert.equal((await form('windows-1252', "q=1'+UNION+SELECT+password+FROM+users--")).status, 403);
    for (const charset of ['utf-16', 'ibm037', 'garbage']) {
      const r = await form(charset, 'name=value');
      assert.equal(r.status, 400, charset);
      assert.equal(r.json().code, 'input.invalid');
    }
  });

  it('lets the same body through in monitor mode, still inspecting its raw text', async () => {
    const before = upstream.requests.length;
    const r = await upload('/watched', 'name="file"; filename="..\\1.7z"');
    assert.equal(r.status, 200);
    assert.equal(upstream.requests.length, before + 1);
    assert.ok(
      gw.logs.some(
        (l) => l.msg === 'body not readable as its Content-Type says (monitor)' && l.route === 'watching',
      ),
      'the monitor-mode pass is logged',
    );
  });

  it('does not refuse bodies of types it does not parse, such as an image or plain text', async () => {
    assert.equal((await post('/upload', 'image/png', '\x89PNG\r\n\x1a\n....')).status, 200);
    assert.equal((await post('/upload', 'text/plain', 'just some text')).status, 200);
  });
});
