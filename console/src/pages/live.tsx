/** Live decisions: request and admin events as they happen, over Server-Sent Events, filtered. */
import { useEffect, useState } from 'preact/hooks';
import { call } from '../api';
import { Badge, useLoad } from '../ui';

interface LiveEvent {
  type: 'request' | 'admin';
  time: string;
  requestId?: string;
  clientIp?: string;
  method?: string;
  path?: string;
  route?: string | null;
  principal?: string | null;
  decision?: string;
  reason?: string;
  status?: number;
  latencyMs?: number;
  action?: string;
  actor?: string;
  target?: string | null;
}

interface Filter {
  type: string;
  decision: string;
  route: string;
  principal: string;
  ip: string;
}

const EMPTY: Filter = { type: '', decision: '', route: '', principal: '', ip: '' };
const KEEP = 200;

export function Live() {
  const routes = useLoad(() => call<{ routes: { name: string }[] }>('GET', '/admin/routes'));
  const [draft, setDraft] = useState<Filter>(EMPTY);
  const [filter, setFilter] = useState<Filter>(EMPTY);
  const [events, setEvents] = useState<(LiveEvent & { n: number })[]>([]);
  const [state, setState] = useState('connecting');
  /** The filter of the stream that is open, as its query string. */
  const [openQuery, setOpenQuery] = useState<string | undefined>(undefined);
  const [paused, setPaused] = useState(false);

  useEffect(() => {
    if (paused) {
      setState('paused');
      return;
    }
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filter)) if (v !== '') q.set(k, v);
    const query = q.toString();
    const source = new EventSource(`/admin/events/stream${query !== '' ? `?${query}` : ''}`);
    let n = 0;
    setState('connecting');
    setOpenQuery(undefined);
    source.onopen = () => {
      setState('live');
      setOpenQuery(query);
    };
    source.onerror = () =>
      setState(source.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting');
    source.onmessage = (m) => {
      const e = JSON.parse(m.data as string) as LiveEvent;
      n += 1;
      const item = { ...e, n };
      setEvents((list) => [item, ...list].slice(0, KEEP));
    };
    return () => source.close();
  }, [filter, paused]);

  const set = (k: keyof Filter) => (ev: Event) =>
    setDraft({ ...draft, [k]: (ev.target as HTMLInputElement).value });

  return (
    <div class="page">
      <h1>Live decisions</h1>
      <form
        class="filters"
        onSubmit={(ev) => {
          ev.preventDefault();
          setEvents([]);
          setFilter({ ...draft });
        }}
      >
        <label>
          Type
          <select name="type" value={draft.type} onChange={set('type')}>
            <option value="">any</option>
            <option value="request">request</option>
            <option value="admin">admin act</option>
          </select>
        </label>
        <label>
          Decision
          <select name="decision" value={draft.decision} onChange={set('decision')}>
            <option value="">any</option>
            <option value="allow">allow</option>
            <option value="deny">deny</option>
            <option value="error">error</option>
          </select>
        </label>
        <label>
          Route
          <select name="route" value={draft.route} onChange={set('route')}>
            <option value="">any</option>
            {routes.data?.routes.map((r) => (
              <option key={r.name} value={r.name}>
                {r.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Principal
          <input name="principal" value={draft.principal} onInput={set('principal')} placeholder="id" />
        </label>
        <label>
          IP
          <input name="ip" value={draft.ip} onInput={set('ip')} placeholder="203.0.113.7" />
        </label>
        <button type="submit">Apply</button>
        <button type="button" onClick={() => setPaused(!paused)}>
          {paused ? 'Resume' : 'Pause'}
        </button>
        <span class={`conn conn-${state}`} data-stream-state={state} data-stream-query={openQuery}>
          {state}
        </span>
      </form>
      <table class="events" data-live>
        <thead>
          <tr>
            <th>Time</th>
            <th>Decision</th>
            <th>Status</th>
            <th>Request</th>
            <th>Route</th>
            <th>Principal</th>
            <th>IP</th>
            <th>Reason</th>
            <th>ms</th>
          </tr>
        </thead>
        <tbody>
          {events.length === 0 && (
            <tr>
              <td colSpan={9} class="muted">
                Waiting for events…
              </td>
            </tr>
          )}
          {events.map((e) =>
            e.type === 'request' ? (
              <tr key={e.n} data-decision={e.decision}>
                <td>{new Date(e.time).toLocaleTimeString()}</td>
                <td>
                  <Badge value={e.decision ?? ''} />
                </td>
                <td class="num">{e.status}</td>
                <td class="mono">
                  {e.method} {e.path}
                </td>
                <td>{e.route ?? '—'}</td>
                <td class="mono">{e.principal ?? '—'}</td>
                <td class="mono">{e.clientIp}</td>
                <td class="mono">{e.reason}</td>
                <td class="num">{e.latencyMs}</td>
              </tr>
            ) : (
              <tr key={e.n} data-decision="admin">
                <td>{new Date(e.time).toLocaleTimeString()}</td>
                <td>
                  <Badge value="admin" />
                </td>
                <td />
                <td class="mono" colSpan={2}>
                  {e.action} {e.target ?? ''}
                </td>
                <td class="mono" colSpan={4}>
                  {e.actor}
                </td>
              </tr>
            ),
          )}
        </tbody>
      </table>
    </div>
  );
}
