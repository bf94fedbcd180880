/**
 * Strict `multipart/form-data` parsing (RFC 7578 over RFC 2046) for request
 * bodies: the whole body is in memory, it is read once, and the parts are
 * what validation, authorization rules and injection inspection see. Any
 * body that a common upstream reader could split or name differently is
 * refused rather than guessed at.
 *
 * Why hand-written, not busboy or `Response.formData()`:
 * - busboy (behind multer and express-fileupload) is a
 *   streaming parser: it hands out parts through events and streams, so
 *   using it here would mean a second pass to collect them, and it is
 *   lenient where we must refuse: it accepts obs-fold in part headers, uses
 *   the first of duplicate headers and duplicate parameters (undici uses the
 *   last), silently skips parts with no or a malformed Content-Disposition
 *   or with whitespace after a delimiter, converts field values by the
 *   part's `charset` (UTF-16 is decoded, `charset=base64` base64-encodes
 *   the bytes), and treats `name=""` as no name. None of that is visible
 *   to a caller.
 * - `Response.formData()` (undici) was checked, in Node 20's built-in
 *   undici 6.24 and in the undici 7.30 package: it does NOT accept bare LF
 *   (both refuse it), contrary to a common claim. Its leniency lies
 *   elsewhere: it decodes `Content-Transfer-Encoding: base64`, decodes
 *   `%22`/`%0A`/`%0D` in quoted names (the WHATWG encoding), undici 7 takes
 *   the last of duplicate `name` parameters and prefers `filename*`, and it
 *   returns a `FormData` of strings and `File`s (raw field bytes are gone).
 * The differential test in `multipart.test.ts` compares this parser with
 * busboy, Python's `email` package and undici over a corpus.
 *
 * Grammar accepted (everything else is refused with a short reason):
 * - boundary: 1–70 RFC 2046 bchars, not ending in a space;
 * - preamble: anything, as long as the first `--boundary` in the body is at
 *   its start or right after CRLF (a Python reader also splits on bare CR
 *   or LF, undici on the first `--boundary` anywhere);
 * - delimiter: `CRLF --boundary CRLF`, exactly: no transport padding (busboy
 *   drops the part, Python keeps it), no bare LF or CR before or after;
 * - close delimiter: `CRLF --boundary--`, then the end of the body or CRLF
 *   and an epilogue that does not contain `--boundary` again; a missing
 *   close delimiter is refused (Python accepts the truncated part);
 * - `--boundary` appears nowhere else: not in part headers, not in data
 *   without its CRLF, not followed by anything but `CRLF` or `--`;
 * - part headers: `token ":" OWS value OWS CRLF`, names case-insensitive,
 *   values of VCHAR, obs-text, SP and HTAB only (no NUL or other control
 *   character, no bare CR or LF), no obs-fold, at most
 *   `limits.maxHeaderBytes` bytes up to and including the empty line;
 * - exactly one Content-Disposition: `form-data` (any case), then
 *   `*( OWS ";" OWS param )` with param = `token "=" ( value / quoted )`;
 *   one `name`, at most one `filename`, no duplicate parameter at all;
 * - at most one Content-Type (a media type, ASCII; not `multipart/*` or
 *   `message/*`, which Python parses as nested messages) and at most one
 *   Content-Transfer-Encoding, which must be 7bit, 8bit or binary (RFC 7578
 *   §4.7 deprecates it; base64, decoded by undici and Python, and
 *   quoted-printable, decoded by Python and Go's mime/multipart, would hide
 *   a payload from inspection);
 * - a part without a filename, or with an empty one (a field to busboy),
 *   may only declare `charset=utf-8`, and a `_charset_` field (RFC 7578
 *   §4.6) may only say UTF-8: busboy converts field values by the charset,
 *   we inspect them as UTF-8.
 *
 * Decisions on parameter values (name and filename):
 * - Quoted strings: `\"` means `"` (RFC 2045 quoted-pair; busboy, Python
 *   and Go agree; undici ends the string there and refuses the body). Any
 *   other backslash is refused: old browsers sent `\` unescaped in paths
 *   (`C:\dir\file`), and readers split on it: `\\` is one backslash to
 *   busboy, Python and Go but two to undici; `\b` is `b` to Python and Go
 *   but `\b` to busboy and undici.
 * - Browsers (HTML/WHATWG) instead send `"`, CR and LF in names and
 *   filenames as `%22`, `%0D`, `%0A`; undici decodes those, busboy and
 *   Python do not, so a value containing them is refused.
 * - Extended parameters (`filename*`, `name*`, RFC 2231 continuations
 *   `name*0`) are refused: RFC 7578 §4.2 says not to use them, and readers
 *   differ (busboy and undici 7 prefer `filename*` to `filename`, Python
 *   keeps `filename` but joins `name*0` and `name*1`).
 * - RFC 2047 encoded words (`=?utf-8?q?…?=`) are refused: Python decodes
 *   them inside quoted parameter values, none of the other readers does.
 * - Unquoted values are tokens without `'` and `*`: Python reads `a'b` as
 *   no name at all, `a*b` as `a`, and `utf-8''x` as `x` (RFC 2231).
 * - The bytes are decoded as UTF-8 (invalid UTF-8 is refused); `name` must
 *   not be empty (busboy reads `name=""` as no name). `filename` may be
 *   empty (browsers send `filename=""` for an empty file input). Filenames
 *   are returned raw: busboy reduces them to their basename (unless
 *   `preservePath`), so an inspection of the raw value sees at least what
 *   it sees.
 *
 * Linear time: delimiters are found with `Buffer.indexOf`, each byte of a
 * header section is looked at a bounded number of times, and parts' data
 * are `subarray` views of `body` (not copies).
 */

export interface MultipartPart {
  name: string;
  filename: string | undefined;
  contentType: string | undefined;
  data: Buffer;
}

export type MultipartResult = { ok: true; parts: MultipartPart[] } | { ok: false; reason: string };

export interface MultipartLimits {
  /** The most parts a body may have. */
  maxParts: number;
  /** The most bytes of one part's header section, including its line ends and the empty line. */
  maxHeaderBytes: number;
}

export const DEFAULT_MULTIPART_LIMITS: MultipartLimits = Object.freeze({
  maxParts: 1000,
  maxHeaderBytes: 8 * 1024,
});

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const DASH = 0x2d;
const COLON = 0x3a;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const SEMICOLON = 0x3b;
const EQUALS = 0x3d;

/** RFC 2046 bchars: DIGIT / ALPHA / ' ( ) + _ , - . / : = ? and space. */
const BOUNDARY_RE = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;

/** RFC 9110 tchar. */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
  TCHAR[c.charCodeAt(0)] = 1;
}
const isTchar = (c: number): boolean => c < 128 && TCHAR[c] === 1;
/** Characters of an unquoted parameter value: tchar without `'` and `*` (see the header). */
const isValueChar = (c: number): boolean => isTchar(c) && c !== 0x27 && c !== 0x2a;
/** qdtext: HTAB, SP, %x21, %x23-5B, %x5D-7E, obs-text. */
const isQdtext = (c: number): boolean =>
  c === HTAB || c === SP || c === 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e) || c >= 0x80;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const refuse = (reason: string): { ok: false; reason: string } => ({ ok: false, reason });

/** Parses a whole `multipart/form-data` body. Never throws. */
export function parseMultipart(
  body: Buffer,
  boundary: string,
  limits: MultipartLimits = DEFAULT_MULTIPART_LIMITS,
): MultipartResult {
  if (!BOUNDARY_RE.test(boundary)) return refuse('invalid boundary');
  const dashBoundary = Buffer.from(`--${boundary}`, 'latin1');
  const len = body.length;

  let at = body.indexOf(dashBoundary);
  if (at === -1) return refuse('no delimiter');
  if (at !== 0) {
    const lineStart = lineStartProblem(body, at, 0);
    if (lineStart !== undefined) return refuse(lineStart);
  }

  const parts: MultipartPart[] = [];
  for (;;) {
    // `at` is a delimiter: `--boundary` at the start of a line.
    let pos = at + dashBoundary.length;
    if (body[pos] === DASH && body[pos + 1] === DASH) {
      pos += 2;
      if (pos === len) return { ok: true, parts };
      if (body[pos] !== CR || body[pos + 1] !== LF) {
        return refuse(body[pos] === LF ? 'bare LF' : 'malformed close delimiter');
      }
      if (body.indexOf(dashBoundary, pos + 2) !== -1) return refuse('boundary in epilogue');
      return { ok: true, parts };
    }
    if (pos >= len) return refuse('missing close delimiter');
    if (body[pos] === LF) return refuse('bare LF');
    if (body[pos] !== CR || pos + 1 >= len) return refuse('malformed delimiter');
    if (body[pos + 1] !== LF) return refuse('bare CR');
    const partStart = pos + 2;

    if (parts.length >= limits.maxParts) return refuse('too many parts');
    const next = body.indexOf(dashBoundary, partStart);
    if (next === -1) return refuse('missing close delimiter');

    const part = parsePart(body, partStart, next, limits.maxHeaderBytes);
    if (!part.ok) return part;
    parts.push(part.part);
    at = next;
  }
}

/**
 * Why `--boundary` at `at` is not at the start of a line that begins after
 * `from`, or undefined when it is (preceded by CRLF at or after `from`).
 */
function lineStartProblem(body: Buffer, at: number, from: number): string | undefined {
  if (at - 2 >= from && body[at - 2] === CR && body[at - 1] === LF) return undefined;
  if (at - 1 >= from && body[at - 1] === LF) return 'bare LF';
  if (at - 1 >= from && body[at - 1] === CR) return 'bare CR';
  return 'delimiter not preceded by CRLF';
}

type PartResult = { ok: true; part: MultipartPart } | { ok: false; reason: string };

/** One part: headers from `start`, data up to the CRLF before `next` (the next `--boundary`). */
function parsePart(body: Buffer, start: number, next: number, maxHeaderBytes: number): PartResult {
  const headerEnd = start + maxHeaderBytes;
  let disposition: string | undefined;
  let contentType: string | undefined;
  let transferEncoding: string | undefined;

  let cur = start;
  let dataStart = -1;
  while (dataStart === -1) {
    if (body[cur] === CR && body[cur + 1] === LF) {
      if (cur + 2 > headerEnd) return refuse('part headers too large');
      dataStart = cur + 2;
      break;
    }
    if (body[cur] === SP || body[cur] === HTAB) return refuse('obs-fold');
    // Find the end of this header line, checking every byte on the way.
    let eol = cur;
    for (;;) {
      if (eol >= headerEnd) return refuse('part headers too large');
      if (eol >= next) return refuse('boundary in part headers');
      const c = body[eol]!;
      if (c === CR) {
        if (body[eol + 1] !== LF) return refuse('bare CR');
        break;
      }
      if (c === LF) return refuse('bare LF');
      if ((c < SP && c !== HTAB) || c === 0x7f) return refuse('control character in header');
      eol++;
    }

    let i = cur;
    while (i < eol && isTchar(body[i]!)) i++;
    if (i === cur || body[i] !== COLON) return refuse('malformed header line');
    const name = body.toString('latin1', cur, i).toLowerCase();
    let valueStart = i + 1;
    let valueEnd = eol;
    while (valueStart < valueEnd && (body[valueStart] === SP || body[valueStart] === HTAB)) valueStart++;
    while (valueEnd > valueStart && (body[valueEnd - 1] === SP || body[valueEnd - 1] === HTAB)) valueEnd--;
    const value = body.toString('latin1', valueStart, valueEnd);
    if (name === 'content-disposition') {
      if (disposition !== undefined) return refuse('duplicate Content-Disposition');
      disposition = value;
    } else if (name === 'content-type') {
      if (contentType !== undefined) return refuse('duplicate Content-Type');
      contentType = value;
    } else if (name === 'content-transfer-encoding') {
      if (transferEncoding !== undefined) return refuse('duplicate Content-Transfer-Encoding');
      transferEncoding = value;
    }
    // Other header fields are ignored (RFC 7578 §4.8).
    cur = eol + 2;
  }

  if (next < dataStart + 2) return refuse('delimiter not preceded by CRLF');
  const lineStart = lineStartProblem(body, next, dataStart);
  if (lineStart !== undefined) return refuse(lineStart);

  if (disposition === undefined) return refuse('missing Content-Disposition');
  const dispParsed = parseHeaderValue(disposition, false);
  if (typeof dispParsed === 'string') return refuse(`Content-Disposition: ${dispParsed}`);
  if (dispParsed.type.toLowerCase() !== 'form-data') return refuse('Content-Disposition is not form-data');
  const rawName = dispParsed.params.get('name');
  if (rawName === undefined) return refuse('missing name');
  const name = decodeParam(rawName);
  if (typeof name !== 'string') return refuse(`name: ${name.problem}`);
  if (name === '') return refuse('empty name');
  const rawFilename = dispParsed.params.get('filename');
  let filename: string | undefined;
  if (rawFilename !== undefined) {
    const decoded = decodeParam(rawFilename);
    if (typeof decoded !== 'string') return refuse(`filename: ${decoded.problem}`);
    filename = decoded;
  }

  if (contentType !== undefined) {
    const typeParsed = parseHeaderValue(contentType, true);
    if (typeof typeParsed === 'string') return refuse(`Content-Type: ${typeParsed}`);
    const major = typeParsed.type.slice(0, typeParsed.type.indexOf('/')).toLowerCase();
    if (major === 'multipart' || major === 'message') return refuse('nested multipart or message part');
    const charset = typeParsed.params.get('charset');
    // busboy decodes a part as text by its charset unless it has a non-empty filename.
    if (!filename && charset !== undefined && !isUtf8Label(charset)) {
      return refuse('field charset other than UTF-8');
    }
  }

  if (transferEncoding !== undefined) {
    const cte = transferEncoding.toLowerCase();
    if (cte !== '7bit' && cte !== '8bit' && cte !== 'binary')
      return refuse('unsupported Content-Transfer-Encoding');
  }

  const data = body.subarray(dataStart, next - 2);
  if (name === '_charset_' && filename === undefined && !isUtf8Label(data.toString('latin1').trim())) {
    return refuse('_charset_ other than UTF-8');
  }
  return { ok: true, part: { name, filename, contentType, data } };
}

const isUtf8Label = (label: string): boolean => /^utf-?8$/i.test(label);

interface HeaderValue {
  /** The disposition type, or `type/subtype` of a media type, as written. */
  type: string;
  /** Parameter names in lower case; values are latin1 strings of the raw bytes, quotes and `\"` undone. */
  params: Map<string, string>;
}

/**
 * Parses `type *( OWS ";" OWS param )`, where type is a token or, for a
 * media type, `token "/" token`; returns the problem as a string.
 * `value` holds one char per byte (latin1).
 */
function parseHeaderValue(value: string, mediaType: boolean): HeaderValue | string {
  const n = value.length;
  let i = 0;
  while (i < n && isTchar(value.charCodeAt(i))) i++;
  if (i === 0) return 'malformed';
  if (mediaType) {
    if (value.charCodeAt(i) !== 0x2f) return 'malformed';
    const subtype = ++i;
    while (i < n && isTchar(value.charCodeAt(i))) i++;
    if (i === subtype) return 'malformed';
  }
  const type = value.slice(0, i);
  const params = new Map<string, string>();
  for (;;) {
    while (i < n && (value.charCodeAt(i) === SP || value.charCodeAt(i) === HTAB)) i++;
    if (i === n) break;
    if (value.charCodeAt(i) !== SEMICOLON) return 'malformed';
    i++;
    while (i < n && (value.charCodeAt(i) === SP || value.charCodeAt(i) === HTAB)) i++;
    const nameStart = i;
    while (i < n && isTchar(value.charCodeAt(i))) i++;
    if (i === nameStart) return 'malformed';
    const name = value.slice(nameStart, i).toLowerCase();
    if (name.includes('*')) return 'extended parameter';
    if (value.charCodeAt(i) !== EQUALS) return 'malformed';
    i++;
    let paramValue = '';
    if (value.charCodeAt(i) === QUOTE) {
      i++;
      let closed = false;
      let chunk = i;
      while (i < n) {
        const c = value.charCodeAt(i);
        if (c === QUOTE) {
          closed = true;
          break;
        }
        if (c === BACKSLASH) {
          if (value.charCodeAt(i + 1) !== QUOTE) return 'backslash escape';
          paramValue += value.slice(chunk, i) + '"';
          i += 2;
          chunk = i;
          continue;
        }
        if (!isQdtext(c)) return 'malformed';
        i++;
      }
      if (!closed) return 'malformed';
      paramValue += value.slice(chunk, i);
      i++;
    } else {
      const valueStart = i;
      while (i < n && isValueChar(value.charCodeAt(i))) i++;
      if (i === valueStart) return 'malformed';
      paramValue = value.slice(valueStart, i);
    }
    if (params.has(name)) return 'duplicate parameter';
    params.set(name, paramValue);
  }
  if (mediaType) {
    for (let k = 0; k < n; k++) if (value.charCodeAt(k) > 0x7e) return 'non-ASCII';
  }
  return { type, params };
}

const PERCENT_ESCAPE_RE = /%(?:22|0a|0d)/i;

/** Decodes a name or filename parameter (latin1 string of raw bytes) as strict UTF-8. */
function decodeParam(latin1: string): string | { problem: string } {
  let text: string;
  try {
    text = utf8.decode(Buffer.from(latin1, 'latin1'));
  } catch {
    return { problem: 'invalid UTF-8' };
  }
  if (text.includes('\0')) return { problem: 'NUL' };
  if (PERCENT_ESCAPE_RE.test(text)) return { problem: 'percent-encoded quote or line break' };
  if (text.includes('=?')) return { problem: 'encoded word' };
  return text;
}
