/** Audit: the chain's state (verify), search, and each event's details. */
import { useState } from 'preact/hooks';
import { call, fmtTime } from '../api';
import { Form, TextField, useForm } from '../components/form';
import { DataTable } from '../components/table';
import { Badge, ErrorLine, Json, Panel, useLoad } from '../ui';

interface Verify {
  ok: boolean;
  events: number;
  firstSeq?: number;
  lastSeq?: number;
  checkpointsVerified: number;
  lastSignedSeq?: number;
  unsigned: number;
  lastSignedAt?: string;
  problems: { seq?: number; message?: string; kind?: string }[];
}

type AuditEvent = Record<string, unknown> & { seq: number; time: string; type: string };

const FIELDS = ['principal', 'decision', 'route', 'ip', 'type', 'action', 'since', 'limit'] as const;

/** The event with its `data` (stored as JSON text) shown as the object it is. */
function readable(e: AuditEvent): AuditEvent {
  if (typeof e.data !== 'string') return e;
  try {
    return { ...e, data: JSON.parse(e.data) as unknown };
  } catch {
    return e;
  }
}

export function Audit() {
  const verify = useLoad(() => call<Verify>('GET', '/admin/audit/verify'));
  const form = useForm<Record<string, string>>({ since: '1h', limit: '100' });
  const [query, setQuery] = useState<Record<string, string>>({ since: '1h', limit: '100' });
  const search = useLoad(
    () => {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (v.trim() !== '') q.set(k, v.trim());
      return call<{ events: AuditEvent[] }>('GET', `/admin/audit/events?${q}`);
    },
    0,
    [query],
  );
  const [selected, setSelected] = useState<AuditEvent | undefined>(undefined);
  const v = verify.data;
  return (
    <div class="page">
      <h1>Audit</h1>
      <Panel
        title="Chain status"
        actions={
          <button type="button" onClick={() => void verify.reload()}>
            Verify again
          </button>
        }
      >
        <ErrorLine error={verify.error} />
        {v !== undefined && (
          <div class="chain" data-chain={v.ok ? 'ok' : 'broken'}>
            <p>
              <Badge value={v.ok ? 'verified' : 'broken'} />{' '}
              {v.ok
                ? 'Every retained event chains and every checkpoint verifies.'
                : 'The chain does not verify.'}
            </p>
            <dl>
              <dt>Events</dt>
              <dd>
                {v.events}
                {v.firstSeq !== undefined ? ` (seq ${v.firstSeq}–${v.lastSeq})` : ''}
              </dd>
              <dt>Checkpoints verified</dt>
              <dd>{v.checkpointsVerified}</dd>
              <dt>Last checkpoint</dt>
              <dd>
                {v.lastSignedSeq !== undefined ? `seq ${v.lastSignedSeq}` : 'none yet'}
                {v.lastSignedAt ? `, ${fmtTime(v.lastSignedAt)}` : ''}
              </dd>
              <dt>Events since</dt>
              <dd>{v.unsigned} (chained, not yet signed)</dd>
            </dl>
            {v.problems.length > 0 && <Json value={v.problems} />}
          </div>
        )}
      </Panel>
      <Panel title="Search">
        <Form
          class="form inline"
          onSubmit={() => {
            setSelected(undefined);
            setQuery({ ...form.values });
          }}
        >
          {FIELDS.map((f) => (
            <TextField key={f} form={form} name={f} label={f} />
          ))}
          <button type="submit">Search</button>
        </Form>
        <ErrorLine error={search.error} />
        <div class="split">
          <DataTable
            class="events"
            columns={['Seq', 'Time', 'Type', 'What', 'Who']}
            rows={search.data?.events}
            empty="No events match."
            row={(e) => (
              <tr
                key={e.seq}
                class={selected?.seq === e.seq ? 'selected clickable' : 'clickable'}
                onClick={() => setSelected(e)}
              >
                <td class="num">{e.seq}</td>
                <td>{fmtTime(e.time)}</td>
                <td>
                  {e.type === 'request' ? (
                    <Badge value={String(e.decision ?? '')} />
                  ) : (
                    <Badge value="admin" />
                  )}
                </td>
                <td class="mono">
                  {e.type === 'request'
                    ? `${e.method} ${e.path} → ${e.status} ${e.reason ?? ''}`
                    : `${e.action} ${e.target ?? ''}`}
                </td>
                <td class="mono">{String(e.principal_id ?? e.actor ?? e.client_ip ?? '')}</td>
              </tr>
            )}
          />
          {selected !== undefined && (
            <aside class="details" data-audit-details>
              <header class="panel-head">
                <h3>Event {selected.seq}</h3>
                <button type="button" onClick={() => setSelected(undefined)}>
                  Close
                </button>
              </header>
              <Json value={readable(selected)} />
            </aside>
          )}
        </div>
      </Panel>
    </div>
  );
}
