/** Explain playground: the gateway's decision for a request, from a dry run of the real pipeline. */
import { useState } from 'preact/hooks';
import { call } from '../api';
import { Form } from '../components/form';
import { DataTable } from '../components/table';
import { Badge, ErrorLine, useLoad } from '../ui';

interface Explanation {
  request: string;
  canonicalPath?: string;
  route?: string;
  upstream?: string;
  principal?: { kind: string; id: string; scopes: string[]; roles: string[]; tenant?: string };
  authentication: string;
  rules: { rule: string; pass: boolean; detail: string }[];
  decision: 'allow' | 'deny';
  status: number;
  code?: string;
}

type Credential = 'none' | 'token' | 'key' | 'claims';
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

export function Explain() {
  const routes = useLoad(() =>
    call<{ routes: { name: string; path: string; methods: string[] }[] }>('GET', '/admin/routes'),
  );
  const [method, setMethod] = useState('GET');
  const [target, setTarget] = useState('/');
  const [credential, setCredential] = useState<Credential>('token');
  const [value, setValue] = useState('');
  const [ip, setIp] = useState('127.0.0.1');
  const [body, setBody] = useState('');
  const [result, setResult] = useState<Explanation | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);

  const run = async () => {
    setBusy(true);
    setError(undefined);
    try {
      const input: Record<string, unknown> = { method, target, ip };
      if (credential === 'token' && value.trim() !== '')
        input.token = value.trim().replace(/^Bearer\s+/i, '');
      if (credential === 'key' && value.trim() !== '') input.key = value.trim();
      if (credential === 'claims' && value.trim() !== '') input.claims = JSON.parse(value);
      if (body !== '') input.body = body;
      setResult(await call<Explanation>('POST', '/admin/explain', input));
    } catch (err) {
      setResult(undefined);
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="page">
      <h1>Explain</h1>
      <p class="muted">
        Runs the request through the gateway's own pipeline without calling the upstream, and shows each rule
        it checked. Nothing typed here is stored or logged.
      </p>
      <Form class="form explain-form" onSubmit={() => void run()}>
        <label>
          Route
          <select
            name="route"
            onChange={(ev) => {
              const r = routes.data?.routes.find((x) => x.name === (ev.target as HTMLSelectElement).value);
              if (r) {
                setMethod(r.methods[0] ?? 'GET');
                setTarget(r.path);
              }
            }}
          >
            <option value="">(pick one to fill in method and path)</option>
            {routes.data?.routes.map((r) => (
              <option key={r.name} value={r.name}>
                {r.name} — {r.methods.join(',')} {r.path}
              </option>
            ))}
          </select>
        </label>
        <div class="row">
          <label>
            Method
            <select
              name="method"
              value={method}
              onChange={(ev) => setMethod((ev.target as HTMLSelectElement).value)}
            >
              {METHODS.map((m) => (
                <option key={m}>{m}</option>
              ))}
            </select>
          </label>
          <label class="grow">
            Path and query
            <input
              name="target"
              value={target}
              onInput={(ev) => setTarget((ev.target as HTMLInputElement).value)}
            />
          </label>
          <label>
            Client IP
            <input name="ip" value={ip} onInput={(ev) => setIp((ev.target as HTMLInputElement).value)} />
          </label>
        </div>
        <label>
          Credential
          <select
            name="credential"
            value={credential}
            onChange={(ev) => setCredential((ev.target as HTMLSelectElement).value as Credential)}
          >
            <option value="none">none</option>
            <option value="token">bearer token (JWT)</option>
            <option value="key">API key</option>
            <option value="claims">claims (JSON, no signature)</option>
          </select>
        </label>
        {credential !== 'none' && (
          <label>
            {credential === 'claims' ? 'Claims' : credential === 'key' ? 'API key' : 'Token'}
            <textarea
              name="credential-value"
              rows={3}
              autocomplete="off"
              spellcheck={false}
              value={value}
              onInput={(ev) => setValue((ev.target as HTMLTextAreaElement).value)}
            />
          </label>
        )}
        <label>
          Body (optional)
          <textarea
            name="body"
            rows={2}
            value={body}
            onInput={(ev) => setBody((ev.target as HTMLTextAreaElement).value)}
          />
        </label>
        <button type="submit" disabled={busy}>
          Explain
        </button>
      </Form>
      <ErrorLine error={error} />
      {result !== undefined && (
        <section class="explanation" data-explanation>
          <h2>
            <Badge value={result.decision} /> {result.status}
            {result.code ? <span class="mono"> {result.code}</span> : null}
          </h2>
          <dl>
            <dt>Request</dt>
            <dd class="mono">{result.request}</dd>
            <dt>Route</dt>
            <dd>{result.route ?? '(none matched)'}</dd>
            <dt>Authentication</dt>
            <dd>{result.authentication}</dd>
            {result.principal && (
              <>
                <dt>Principal</dt>
                <dd class="mono">
                  {result.principal.kind}:{result.principal.id}
                  {result.principal.tenant ? ` tenant ${result.principal.tenant}` : ''} scopes [
                  {result.principal.scopes.join(' ')}] roles [{result.principal.roles.join(' ')}]
                </dd>
              </>
            )}
          </dl>
          <DataTable
            class="trail"
            columns={['', 'Rule', 'Detail']}
            rows={result.rules}
            row={(r, i) => (
              <tr key={i} class={r.pass ? 'pass' : 'fail'} data-rule={r.rule} data-pass={String(r.pass)}>
                <td>{r.pass ? '✓' : '✗'}</td>
                <td class="mono">{r.rule}</td>
                <td>{r.detail}</td>
              </tr>
            )}
          />
        </section>
      )}
    </div>
  );
}
