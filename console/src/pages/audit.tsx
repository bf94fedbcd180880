/** Audit: the chain's state (verify), search, and each event's details. */
import { useState } from 'preact/hooks';
import { call, fmtTime } from '../api';
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

const FIELDS = ['principal', 'decision', 'route', 'ip', 'type', 'action', 'since'] as const;

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
  const [form, setForm] = useState<Record<string, string>>({ since: '1h', limit: '100' });
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
        <form
          class="form inline"
          onSubmit={(ev) => {
            ev.preventDefault();
            setSelected(undefined);
            setQuery({ ...form });
          }}
        >
          {FIELDS.map((f) => (
            <label key={f}>
              {f}
              <input
                name={f}
                value={form[f] ?? ''}
                onInput={(ev) => setForm({ ...form, [f]: (ev.target as HTMLInputElement).value })}
              />
            </label>
          ))}
          <label>
            limit
            <input
              name="limit"
              value={form.limit ?? ''}
              onInput={(ev) => setForm({ ...form, limit: (ev.target as HTMLInputElement).value })}
            />
          </label>
          <button type="submit">Search</button>
        </form>
        <ErrorLine error={search.error} />
        <div class="split">
          <table class="events">
            <thead>
              <tr>
                <th>Seq</th>
                <th>Time</th>
                <th>Type</th>
                <th>What</th>
                <th>Who</th>
              </tr>
            </thead>
            <tbody>
              {search.data?.events.length === 0 && (
                <tr>
                  <td colSpan={5} class="muted">
                    No events match.
                  </td>
                </tr>
              )}
              {search.data?.events.map((e) => (
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
              ))}
            </tbody>
          </table>
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
