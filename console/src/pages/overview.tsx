/** Overview: this instance's traffic and decisions, latency, the most denied, and recent alerts. */
import { useState } from 'preact/hooks';
import { call, fmtTime } from '../api';
import { Chart } from '../chart';
import { ALERT_COLUMNS, type Alert, AlertCells } from '../components/alerts';
import { DataTable } from '../components/table';
import { ErrorLine, Panel, useLoad } from '../ui';

interface Top {
  key: string;
  count: number;
}

interface Series {
  bucketSeconds: number;
  times: number[];
  requests: number[];
  allowed: number[];
  denied: number[];
  limited: number[];
  errors: number[];
  reasons: Record<string, number[]>;
  p50: (number | null)[];
  p99: (number | null)[];
  totals: {
    requests: number;
    allowed: number;
    denied: number;
    limited: number;
    errors: number;
    p50: number | null;
    p99: number | null;
  };
  top: { principals: Top[]; ips: Top[]; routes: Top[] };
}

const PALETTE = ['#c0392b', '#8e44ad', '#d35400', '#2c3e50', '#16a085', '#7f8c8d', '#b7950b', '#1f618d'];

function Stat({ name, label, value, tone }: { name: string; label: string; value: string; tone?: string }) {
  return (
    <div class={`stat ${tone ?? ''}`} data-stat={name}>
      <span class="stat-value">{value}</span>
      <span class="stat-label">{label}</span>
    </div>
  );
}

function TopTable({ title, rows, name }: { title: string; rows: Top[]; name: string }) {
  return (
    <div class="top" data-top={name}>
      <h3>{title}</h3>
      {rows.length === 0 ? (
        <p class="muted">No denials.</p>
      ) : (
        <table>
          <tbody>
            {rows.map((r) => (
              <tr key={r.key}>
                <td class="mono">{r.key}</td>
                <td class="num">{r.count}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

const ms = (v: number | null) => (v === null ? '—' : `${v} ms`);

export function Overview() {
  const [minutes, setMinutes] = useState(15);
  const series = useLoad(() => call<Series>('GET', `/admin/metrics/timeseries?minutes=${minutes}`), 5000, [
    minutes,
  ]);
  const alerts = useLoad(() => call<{ alerts: Alert[] }>('GET', '/admin/alerts?limit=10'), 15000);
  const s = series.data;
  return (
    <div class="page">
      <div class="panel-head">
        <h1>Overview</h1>
        <nav class="window">
          {[5, 15, 60].map((m) => (
            <button
              key={m}
              type="button"
              class={`window-btn ${m === minutes ? 'on' : 'off'}`}
              data-window={m}
              onClick={() => setMinutes(m)}
            >
              {m === 60 ? '1 h' : `${m} min`}
            </button>
          ))}
        </nav>
      </div>
      <p class="muted">
        This instance, the last {minutes === 60 ? 'hour' : `${minutes} minutes`} in {s?.bucketSeconds ?? 10}
        -second steps; refreshed every 5 seconds.
      </p>
      <ErrorLine error={series.error} />
      {s !== undefined && (
        <>
          <div class="stats">
            <Stat name="requests" label="requests" value={String(s.totals.requests)} />
            <Stat name="allowed" label="allowed" value={String(s.totals.allowed)} tone="good" />
            <Stat name="denied" label="denied" value={String(s.totals.denied)} tone="bad" />
            <Stat name="limited" label="429 rate limited" value={String(s.totals.limited)} tone="warn" />
            <Stat name="errors" label="5xx" value={String(s.totals.errors)} tone="bad" />
            <Stat name="p50" label="p50 latency" value={ms(s.totals.p50)} />
            <Stat name="p99" label="p99 latency" value={ms(s.totals.p99)} />
          </div>
          <div class="charts">
            <Chart
              title="Requests and decisions"
              times={s.times}
              series={[
                { label: 'allowed', color: '#2e7d32' },
                { label: 'denied', color: '#c62828' },
                { label: '429', color: '#ef6c00' },
                { label: '5xx', color: '#6a1b9a' },
              ]}
              values={[s.allowed, s.denied, s.limited, s.errors]}
            />
            <Chart
              title="Denied by reason"
              times={s.times}
              series={Object.keys(s.reasons).map((r, i) => ({
                label: r,
                color: PALETTE[i % PALETTE.length]!,
              }))}
              values={Object.values(s.reasons)}
            />
            <Chart
              title="Latency"
              times={s.times}
              unit=" ms"
              series={[
                { label: 'p50', color: '#1565c0' },
                { label: 'p99', color: '#ad1457' },
              ]}
              values={[s.p50, s.p99]}
            />
          </div>
          <div class="tops">
            <TopTable title="Top denied principals" rows={s.top.principals} name="principals" />
            <TopTable title="Top denied IPs" rows={s.top.ips} name="ips" />
            <TopTable title="Top denied routes" rows={s.top.routes} name="routes" />
          </div>
        </>
      )}
      <Panel title="Alerts (last 24 hours)">
        <ErrorLine error={alerts.error} />
        {alerts.data !== undefined && alerts.data.alerts.length === 0 && <p class="muted">No alerts.</p>}
        {alerts.data !== undefined && alerts.data.alerts.length > 0 && (
          <DataTable
            columns={[...ALERT_COLUMNS, 'Last seen']}
            rows={alerts.data.alerts}
            row={(a) => (
              <tr key={a.id}>
                <AlertCells alert={a} />
                <td>{fmtTime(a.lastSeen)}</td>
              </tr>
            )}
          />
        )}
      </Panel>
    </div>
  );
}
