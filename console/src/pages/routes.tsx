/** Routes: each route's effective policies, as the running configuration has them (secrets redacted). */
import { call } from '../api';
import { ErrorLine, Json, useLoad } from '../ui';

interface Route {
  name: string;
  path: string;
  methods: string[];
  upstream: { name: string; origin: string | null; basePath: string };
  auth: string | string[];
  providers: string[] | null;
  authorize: unknown;
  rateLimits: unknown;
  bodyLimit: number | null;
  validation: unknown;
  inspection: unknown;
  responses: unknown;
  cors: unknown;
  operations: Record<string, { id: string; source: string }>;
}

function Setting({ label, value }: { label: string; value: unknown }) {
  if (value === null || value === undefined) return null;
  return (
    <div class="setting">
      <h4>{label}</h4>
      {typeof value === 'string' || typeof value === 'number' ? (
        <p class="mono">{String(value)}</p>
      ) : (
        <Json value={value} />
      )}
    </div>
  );
}

export function Routes() {
  const { data, error } = useLoad(() => call<{ routes: Route[] }>('GET', '/admin/routes'));
  return (
    <div class="page">
      <h1>Routes</h1>
      <ErrorLine error={error} />
      {data?.routes.map((r) => (
        <details key={r.name} class="route" data-route={r.name}>
          <summary>
            <span class="route-name">{r.name}</span>
            <span class="mono">
              {r.methods.join(', ')} {r.path}
            </span>
            <span class="muted">
              auth: {Array.isArray(r.auth) ? r.auth.join(', ') : r.auth}
              {r.providers ? ` (${r.providers.join(', ')})` : ''} → {r.upstream.name}
            </span>
          </summary>
          <div class="route-body">
            <Setting label="Upstream" value={`${r.upstream.origin ?? '?'}${r.upstream.basePath}`} />
            <Setting label="Authorization" value={r.authorize} />
            <Setting label="Rate limits" value={r.rateLimits} />
            <Setting label="Body limit (bytes)" value={r.bodyLimit} />
            <Setting label="Validation" value={r.validation} />
            <Setting label="Inspection" value={r.inspection} />
            <Setting label="Responses" value={r.responses} />
            <Setting label="CORS" value={r.cors} />
            <Setting
              label="API description operations"
              value={Object.keys(r.operations).length === 0 ? null : r.operations}
            />
          </div>
        </details>
      ))}
    </div>
  );
}
