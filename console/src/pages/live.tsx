/** Live decisions: request and admin events as they happen, over Server-Sent Events, filtered. */
import { useEffect, useState } from 'preact/hooks';
import { call } from '../api';
import { Form, SelectField, TextField, useForm } from '../components/form';
import { DataTable } from '../components/table';
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
const ANY = ['', 'any'] as const;

export function Live() {
  const routes = useLoad(() => call<{ routes: { name: string }[] }>('GET', '/admin/routes'));
  const draft = useForm<Filter>(EMPTY);
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

  return (
    <div class="page">
      <h1>Live decisions</h1>
      <Form
        class="filters"
        onSubmit={() => {
          setEvents([]);
          setFilter({ ...draft.values });
        }}
      >
        <SelectField
          form={draft}
          name="type"
          label="Type"
          options={[ANY, 'request', ['admin', 'admin act']]}
        />
        <SelectField
          form={draft}
          name="decision"
          label="Decision"
          options={[ANY, 'allow', 'deny', 'error']}
        />
        <SelectField
          form={draft}
          name="route"
          label="Route"
          options={[ANY, ...(routes.data?.routes.map((r) => r.name) ?? [])]}
        />
        <TextField form={draft} name="principal" label="Principal" placeholder="id" />
        <TextField form={draft} name="ip" label="IP" placeholder="203.0.113.7" />
        <button type="submit">Apply</button>
        <button type="button" onClick={() => setPaused(!paused)}>
          {paused ? 'Resume' : 'Pause'}
        </button>
        <span class={`conn conn-${state}`} data-stream-state={state} data-stream-query={openQuery}>
          {state}
        </span>
      </Form>
      <DataTable
        class="events"
        data-live
        columns={['Time', 'Decision', 'Status', 'Request', 'Route', 'Principal', 'IP', 'Reason', 'ms']}
        rows={events}
        empty="Waiting for events…"
        row={(e) =>
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
          )
        }
      />
    </div>
  );
}
