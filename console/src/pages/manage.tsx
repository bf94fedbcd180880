/**
 * Management: API keys, OAuth clients, blocks, token revocations, alerts and
 * admin tokens. Controls that change anything are shown only to the roles
 * allowed to use them (the server refuses the others all the same), and
 * carry `data-manage`. A secret made here is shown once, then dropped.
 */
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { call, fmtTime, type Role, roleAllows, type Session } from '../api';
import { Badge, ErrorLine, Panel, ShownOnce, useLoad } from '../ui';

const TABS = ['keys', 'clients', 'blocks', 'revocations', 'alerts', 'admin'] as const;
type Tab = (typeof TABS)[number];
const TAB_NAMES: Record<Tab, string> = {
  keys: 'API keys',
  clients: 'OAuth clients',
  blocks: 'Blocks',
  revocations: 'Revocations',
  alerts: 'Alerts',
  admin: 'Admin tokens & config',
};

/** Runs an act, reporting its error; answers whether it worked. */
function useAct() {
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  const act = async (fn: () => Promise<unknown>): Promise<boolean> => {
    setBusy(true);
    setError(undefined);
    try {
      await fn();
      return true;
    } catch (err) {
      setError(err);
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { error, busy, act };
}

function ActButton({
  label,
  onClick,
  confirm,
  danger,
}: {
  label: string;
  onClick: () => void;
  confirm?: string;
  danger?: boolean;
}) {
  return (
    <button
      type="button"
      class={danger ? 'danger' : ''}
      data-manage={label.toLowerCase()}
      onClick={() => {
        if (confirm === undefined || window.confirm(confirm)) onClick();
      }}
    >
      {label}
    </button>
  );
}

function Field({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    // biome-ignore lint/a11y/noLabelWithoutControl: the control comes as children
    <label>
      {label}
      {children}
    </label>
  );
}

const val = (ev: Event) => (ev.target as HTMLInputElement).value;

interface Key {
  id: string;
  name: string;
  scopes: string[];
  tenant: string | null;
  createdAt: string | null;
  expiresAt: string | null;
  lastUsedAt: string | null;
  status: string;
}

function Keys({ role }: { role: Role }) {
  const list = useLoad(() => call<{ keys: Key[] }>('GET', '/admin/keys'));
  const { error, busy, act } = useAct();
  const [secret, setSecret] = useState<string | undefined>(undefined);
  const [form, setForm] = useState({ name: '', scopes: '', tenant: '', expires_in: '' });
  const canManage = roleAllows(role, 'operator');
  const create = () =>
    act(async () => {
      const body: Record<string, unknown> = {
        name: form.name,
        scopes: form.scopes.split(/[\s,]+/).filter(Boolean),
      };
      if (form.tenant !== '') body.tenant = form.tenant;
      if (form.expires_in !== '') body.expires_in = form.expires_in;
      const r = await call<{ key: string }>('POST', '/admin/keys', body);
      setSecret(r.key);
      setForm({ name: '', scopes: '', tenant: '', expires_in: '' });
      await list.reload();
    });
  return (
    <Panel title="API keys">
      <ErrorLine error={list.error ?? error} />
      {secret !== undefined && (
        <ShownOnce label="The new API key" secret={secret} onDismiss={() => setSecret(undefined)} />
      )}
      {canManage && (
        <form
          class="form inline"
          data-manage="create-key"
          onSubmit={(ev) => {
            ev.preventDefault();
            void create();
          }}
        >
          <Field label="Name">
            <input
              name="name"
              required
              value={form.name}
              onInput={(ev) => setForm({ ...form, name: val(ev) })}
            />
          </Field>
          <Field label="Scopes">
            <input
              name="scopes"
              required
              placeholder="orders:read"
              value={form.scopes}
              onInput={(ev) => setForm({ ...form, scopes: val(ev) })}
            />
          </Field>
          <Field label="Tenant">
            <input
              name="tenant"
              value={form.tenant}
              onInput={(ev) => setForm({ ...form, tenant: val(ev) })}
            />
          </Field>
          <Field label="Expires in">
            <input
              name="expires_in"
              placeholder="90d"
              value={form.expires_in}
              onInput={(ev) => setForm({ ...form, expires_in: val(ev) })}
            />
          </Field>
          <button type="submit" disabled={busy}>
            Create key
          </button>
        </form>
      )}
      <table>
        <thead>
          <tr>
            <th>Id</th>
            <th>Name</th>
            <th>Scopes</th>
            <th>Tenant</th>
            <th>Status</th>
            <th>Created</th>
            <th>Expires</th>
            <th>Last used</th>
            {canManage && <th />}
          </tr>
        </thead>
        <tbody>
          {list.data?.keys.map((k) => (
            <tr key={k.id} data-key={k.id}>
              <td class="mono">{k.id}</td>
              <td>{k.name}</td>
              <td class="mono">{k.scopes.join(' ')}</td>
              <td>{k.tenant ?? '—'}</td>
              <td>
                <Badge value={k.status} />
              </td>
              <td>{fmtTime(k.createdAt)}</td>
              <td>{fmtTime(k.expiresAt)}</td>
              <td>{fmtTime(k.lastUsedAt)}</td>
              {canManage && (
                <td class="actions">
                  {k.status === 'active' && (
                    <>
                      <ActButton
                        label="Rotate"
                        confirm={`Rotate ${k.id}? The old key keeps working for 24 hours.`}
                        onClick={() =>
                          void act(async () => {
                            const r = await call<{ key: string }>('POST', `/admin/keys/${k.id}/rotate`, {});
                            setSecret(r.key);
                            await list.reload();
                          })
                        }
                      />
                      <ActButton
                        label="Revoke"
                        danger
                        confirm={`Revoke ${k.id} now?`}
                        onClick={() =>
                          void act(async () => {
                            await call('POST', `/admin/keys/${k.id}/revoke`);
                            await list.reload();
                          })
                        }
                      />
                    </>
                  )}
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </Panel>
  );
}

interface Client {
  id: string;
  name: string;
  scopes: string[];
  tenant: string | null;
  createdAt: string | null;
  status: string;
}

function Clients({ role }: { role: Role }) {
  const list = useLoad(() => call<{ clients: Client[] }>('GET', '/admin/clients'));
  const { error, busy, act } = useAct();
  const [secret, setSecret] = useState<string | undefined>(undefined);
  const [form, setForm] = useState({ name: '', scopes: '', tenant: '' });
  const canManage = roleAllows(role, 'operator');
  return (
    <Panel title="OAuth clients">
      <ErrorLine error={list.error ?? error} />
      {secret !== undefined && (
        <ShownOnce label="The new client secret" secret={secret} onDismiss={() => setSecret(undefined)} />
      )}
      {canManage && (
        <form
          class="form inline"
          data-manage="create-client"
          onSubmit={(ev) => {
            ev.preventDefault();
            void act(async () => {
              const body: Record<string, unknown> = {
                name: form.name,
                scopes: form.scopes.split(/[\s,]+/).filter(Boolean),
              };
              if (form.tenant !== '') body.tenant = form.tenant;
              const r = await call<{ client_secret: string; client: { id: string } }>(
                'POST',
                '/admin/clients',
                body,
              );
              setSecret(`${r.client.id}:${r.client_secret}`);
              setForm({ name: '', scopes: '', tenant: '' });
              await list.reload();
            });
          }}
        >
          <Field label="Name">
            <input
              name="name"
              required
              value={form.name}
              onInput={(ev) => setForm({ ...form, name: val(ev) })}
            />
          </Field>
          <Field label="Scopes">
            <input
              name="scopes"
              required
              value={form.scopes}
              onInput={(ev) => setForm({ ...form, scopes: val(ev) })}
            />
          </Field>
          <Field label="Tenant">
            <input
              name="tenant"
              value={form.tenant}
              onInput={(ev) => setForm({ ...form, tenant: val(ev) })}
            />
          </Field>
          <button type="submit" disabled={busy}>
            Create client
          </button>
        </form>
      )}
      <table>
        <thead>
          <tr>
            <th>Id</th>
            <th>Name</th>
            <th>Scopes</th>
            <th>Tenant</th>
            <th>Status</th>
            <th>Created</th>
            {canManage && <th />}
          </tr>
        </thead>
        <tbody>
          {list.data?.clients.map((c) => (
            <tr key={c.id}>
              <td class="mono">{c.id}</td>
              <td>{c.name}</td>
              <td class="mono">{c.scopes.join(' ')}</td>
              <td>{c.tenant ?? '—'}</td>
              <td>
                <Badge value={c.status} />
              </td>
              <td>{fmtTime(c.createdAt)}</td>
              {canManage && (
                <td class="actions">
                  {c.status === 'active' && (
                    <ActButton
                      label="Revoke"
                      danger
                      confirm={`Revoke client ${c.id}?`}
                      onClick={() =>
                        void act(async () => {
                          await call('POST', `/admin/clients/${c.id}/revoke`);
                          await list.reload();
                        })
                      }
                    />
                  )}
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </Panel>
  );
}

interface Block {
  id: string;
  kind: string;
  subject: string;
  status: number;
  reason: string;
  createdBy: string;
  expiresAt: string | null;
  state: string;
}

function Blocks({ role }: { role: Role }) {
  const [all, setAll] = useState(false);
  const list = useLoad(() => call<{ blocks: Block[] }>('GET', `/admin/blocks?all=${all}`), 0, [all]);
  const { error, busy, act } = useAct();
  const [form, setForm] = useState({ kind: 'ip', subject: '', duration: '1h', status: '429', reason: '' });
  const canManage = roleAllows(role, 'operator');
  return (
    <Panel
      title="Blocks"
      actions={
        <label class="check">
          <input
            type="checkbox"
            checked={all}
            onChange={(ev) => setAll((ev.target as HTMLInputElement).checked)}
          />{' '}
          show expired and lifted
        </label>
      }
    >
      <ErrorLine error={list.error ?? error} />
      {canManage && (
        <form
          class="form inline"
          data-manage="add-block"
          onSubmit={(ev) => {
            ev.preventDefault();
            void act(async () => {
              const body: Record<string, unknown> = {
                kind: form.kind,
                subject: form.subject,
                duration: form.duration,
                status: Number(form.status),
              };
              if (form.reason !== '') body.reason = form.reason;
              await call('POST', '/admin/blocks', body);
              setForm({ ...form, subject: '', reason: '' });
              await list.reload();
            });
          }}
        >
          <Field label="Kind">
            <select name="kind" value={form.kind} onChange={(ev) => setForm({ ...form, kind: val(ev) })}>
              <option value="ip">ip</option>
              <option value="principal">principal</option>
              <option value="api_key">api_key</option>
            </select>
          </Field>
          <Field label="Subject">
            <input
              name="subject"
              required
              value={form.subject}
              onInput={(ev) => setForm({ ...form, subject: val(ev) })}
            />
          </Field>
          <Field label="Duration">
            <input
              name="duration"
              required
              value={form.duration}
              onInput={(ev) => setForm({ ...form, duration: val(ev) })}
            />
          </Field>
          <Field label="Answer">
            <select
              name="status"
              value={form.status}
              onChange={(ev) => setForm({ ...form, status: val(ev) })}
            >
              <option value="429">429</option>
              <option value="403">403</option>
            </select>
          </Field>
          <Field label="Reason">
            <input
              name="reason"
              value={form.reason}
              onInput={(ev) => setForm({ ...form, reason: val(ev) })}
            />
          </Field>
          <button type="submit" disabled={busy}>
            Add block
          </button>
        </form>
      )}
      <table>
        <thead>
          <tr>
            <th>Id</th>
            <th>Subject</th>
            <th>Answer</th>
            <th>Reason</th>
            <th>By</th>
            <th>Until</th>
            <th>State</th>
            {canManage && <th />}
          </tr>
        </thead>
        <tbody>
          {list.data?.blocks.map((b) => (
            <tr key={b.id} data-block={`${b.kind}:${b.subject}`}>
              <td class="mono">{b.id}</td>
              <td class="mono">
                {b.kind}:{b.subject}
              </td>
              <td class="num">{b.status}</td>
              <td>{b.reason}</td>
              <td class="mono">{b.createdBy}</td>
              <td>{fmtTime(b.expiresAt)}</td>
              <td>
                <Badge value={b.state} />
              </td>
              {canManage && (
                <td class="actions">
                  {b.state === 'active' && (
                    <ActButton
                      label="Lift"
                      onClick={() =>
                        void act(async () => {
                          await call('DELETE', `/admin/blocks/${b.id}`);
                          await list.reload();
                        })
                      }
                    />
                  )}
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </Panel>
  );
}

interface Revocation {
  kind: string;
  subject: string;
  issuer: string | null;
  revokedAt: string | null;
  expiresAt: string | null;
  actor: string;
  reason: string | null;
}

function Revocations({ role }: { role: Role }) {
  const list = useLoad(() => call<{ revocations: Revocation[] }>('GET', '/admin/revocations'));
  const { error, busy, act } = useAct();
  const [form, setForm] = useState({ kind: 'jti', subject: '', issuer: '', reason: '' });
  const canManage = roleAllows(role, 'operator');
  return (
    <Panel title="Token revocations">
      <ErrorLine error={list.error ?? error} />
      {canManage && (
        <form
          class="form inline"
          data-manage="revoke-tokens"
          onSubmit={(ev) => {
            ev.preventDefault();
            void act(async () => {
              const body: Record<string, unknown> = { kind: form.kind };
              if (form.kind === 'before') body.issued_before = form.subject || 'now';
              else body.subject = form.subject;
              if (form.issuer !== '') body.issuer = form.issuer;
              if (form.reason !== '') body.reason = form.reason;
              await call('POST', '/admin/revocations', body);
              setForm({ ...form, subject: '', reason: '' });
              await list.reload();
            });
          }}
        >
          <Field label="Kind">
            <select name="kind" value={form.kind} onChange={(ev) => setForm({ ...form, kind: val(ev) })}>
              <option value="jti">jti (one token)</option>
              <option value="sub">sub (a subject's tokens)</option>
              <option value="client">client (a client's tokens)</option>
              <option value="before">before (all issued before)</option>
            </select>
          </Field>
          <Field label={form.kind === 'before' ? 'Issued before (ISO time or now)' : 'Subject'}>
            <input
              name="subject"
              value={form.subject}
              onInput={(ev) => setForm({ ...form, subject: val(ev) })}
            />
          </Field>
          <Field label="Issuer">
            <input
              name="issuer"
              value={form.issuer}
              onInput={(ev) => setForm({ ...form, issuer: val(ev) })}
            />
          </Field>
          <Field label="Reason">
            <input
              name="reason"
              value={form.reason}
              onInput={(ev) => setForm({ ...form, reason: val(ev) })}
            />
          </Field>
          <button type="submit" disabled={busy}>
            Revoke tokens
          </button>
        </form>
      )}
      <table>
        <thead>
          <tr>
            <th>Kind</th>
            <th>Subject</th>
            <th>Issuer</th>
            <th>Revoked at</th>
            <th>Kept until</th>
            <th>By</th>
            <th>Reason</th>
          </tr>
        </thead>
        <tbody>
          {list.data?.revocations.map((r, i) => (
            <tr key={i}>
              <td>{r.kind}</td>
              <td class="mono">{r.subject || '—'}</td>
              <td class="mono">{r.issuer ?? '(any)'}</td>
              <td>{fmtTime(r.revokedAt)}</td>
              <td>{fmtTime(r.expiresAt)}</td>
              <td class="mono">{r.actor}</td>
              <td>{r.reason ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Panel>
  );
}

interface Alert {
  id: string;
  detector: string;
  severity: string;
  subject: { kind: string; id: string };
  summary: string;
  firstSeen: string | null;
  lastSeen: string | null;
  count: number;
}

function Alerts({ role }: { role: Role }) {
  const list = useLoad(() => call<{ alerts: Alert[] }>('GET', '/admin/alerts?since=7d&limit=200'));
  const { error, act } = useAct();
  const [done, setDone] = useState<string | undefined>(undefined);
  const canManage = roleAllows(role, 'operator');
  return (
    <Panel title="Alerts (last 7 days)">
      <ErrorLine error={list.error ?? error} />
      {done !== undefined && <p class="ok">{done}</p>}
      <table>
        <thead>
          <tr>
            <th>Severity</th>
            <th>Detector</th>
            <th>Subject</th>
            <th>Summary</th>
            <th>Count</th>
            <th>First seen</th>
            <th>Last seen</th>
            {canManage && <th />}
          </tr>
        </thead>
        <tbody>
          {list.data?.alerts.map((a) => (
            <tr key={a.id}>
              <td>
                <Badge value={a.severity} />
              </td>
              <td>{a.detector}</td>
              <td class="mono">
                {a.subject.kind}:{a.subject.id}
              </td>
              <td>{a.summary}</td>
              <td class="num">{a.count}</td>
              <td>{fmtTime(a.firstSeen)}</td>
              <td>{fmtTime(a.lastSeen)}</td>
              {canManage && (
                <td class="actions">
                  {['ip', 'principal', 'api_key'].includes(a.subject.kind) && (
                    <ActButton
                      label="Block 1h"
                      confirm={`Block ${a.subject.kind} ${a.subject.id} for an hour?`}
                      onClick={() =>
                        void act(async () => {
                          await call('POST', '/admin/blocks', {
                            kind: a.subject.kind,
                            subject: a.subject.id,
                            duration: '1h',
                            reason: `alert ${a.id}: ${a.summary}`.slice(0, 500),
                          });
                          setDone(`Blocked ${a.subject.kind}:${a.subject.id} for an hour.`);
                        })
                      }
                    />
                  )}
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </Panel>
  );
}

interface AdminToken {
  id: string;
  name: string;
  role: Role;
  createdAt: string | null;
  lastUsedAt: string | null;
  status: string;
}

function AdminTokens() {
  const list = useLoad(() => call<{ tokens: AdminToken[] }>('GET', '/admin/tokens'));
  const { error, busy, act } = useAct();
  const [secret, setSecret] = useState<string | undefined>(undefined);
  const [form, setForm] = useState({ name: '', role: 'viewer' });
  const [reloaded, setReloaded] = useState<string | undefined>(undefined);
  return (
    <>
      <Panel title="Configuration">
        <p class="muted">
          Load the configuration file again, as SIGHUP does; on an error the running one stays.
        </p>
        {reloaded !== undefined && <p class="ok">{reloaded}</p>}
        <ActButton
          label="Reload"
          confirm="Reload the configuration now?"
          onClick={() =>
            void act(async () => {
              const r = await call<{ version?: string | null; routes?: number }>('POST', '/admin/reload');
              setReloaded(`Reloaded: ${r.routes ?? '?'} routes, version ${r.version ?? '?'}.`);
            })
          }
        />
      </Panel>
      <Panel title="Admin tokens">
        <ErrorLine error={list.error ?? error} />
        {secret !== undefined && (
          <ShownOnce label="The new admin token" secret={secret} onDismiss={() => setSecret(undefined)} />
        )}
        <form
          class="form inline"
          data-manage="create-admin-token"
          onSubmit={(ev) => {
            ev.preventDefault();
            void act(async () => {
              const body: Record<string, unknown> = { role: form.role };
              if (form.name !== '') body.name = form.name;
              const r = await call<{ token: string }>('POST', '/admin/tokens', body);
              setSecret(r.token);
              setForm({ name: '', role: 'viewer' });
              await list.reload();
            });
          }}
        >
          <Field label="Name">
            <input name="name" value={form.name} onInput={(ev) => setForm({ ...form, name: val(ev) })} />
          </Field>
          <Field label="Role">
            <select name="role" value={form.role} onChange={(ev) => setForm({ ...form, role: val(ev) })}>
              <option value="viewer">viewer</option>
              <option value="operator">operator</option>
              <option value="admin">admin</option>
            </select>
          </Field>
          <button type="submit" disabled={busy}>
            Create admin token
          </button>
        </form>
        <table>
          <thead>
            <tr>
              <th>Id</th>
              <th>Name</th>
              <th>Role</th>
              <th>Status</th>
              <th>Created</th>
              <th>Last used</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {list.data?.tokens.map((t) => (
              <tr key={t.id}>
                <td class="mono">{t.id}</td>
                <td>{t.name}</td>
                <td>{t.role}</td>
                <td>
                  <Badge value={t.status} />
                </td>
                <td>{fmtTime(t.createdAt)}</td>
                <td>{fmtTime(t.lastUsedAt)}</td>
                <td class="actions">
                  {t.status === 'active' && (
                    <ActButton
                      label="Revoke"
                      danger
                      confirm={`Revoke admin token ${t.id}? Its console sessions end too.`}
                      onClick={() =>
                        void act(async () => {
                          await call('DELETE', `/admin/tokens/${t.id}`);
                          await list.reload();
                        })
                      }
                    />
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </Panel>
    </>
  );
}

export function Manage({ session, tab }: { session: Session; tab: string }) {
  const role = session.role;
  const tabs = TABS.filter((t) => t !== 'admin' || roleAllows(role, 'admin'));
  const current: Tab = (tabs as readonly string[]).includes(tab) ? (tab as Tab) : 'keys';
  return (
    <div class="page">
      <h1>Management</h1>
      {!roleAllows(role, 'operator') && (
        <p class="muted" data-read-only>
          Your role, {role}, can look but not change anything here.
        </p>
      )}
      <nav class="tabs">
        {tabs.map((t) => (
          <a key={t} href={`#/manage/${t}`} class={t === current ? 'active' : ''}>
            {TAB_NAMES[t]}
          </a>
        ))}
      </nav>
      {current === 'keys' && <Keys role={role} />}
      {current === 'clients' && <Clients role={role} />}
      {current === 'blocks' && <Blocks role={role} />}
      {current === 'revocations' && <Revocations role={role} />}
      {current === 'alerts' && <Alerts role={role} />}
      {current === 'admin' && <AdminTokens />}
    </div>
  );
}
