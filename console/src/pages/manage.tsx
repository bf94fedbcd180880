/**
 * Management: API keys, OAuth clients, blocks, token revocations, alerts and
 * admin tokens. Controls that change anything are shown only to the roles
 * allowed to use them (the server refuses the others all the same), and
 * carry `data-manage`. A secret made here is shown once, then dropped.
 */
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { call, fmtTime, type Role, roleAllows, type Session } from '../api';
import { ALERT_COLUMNS, type Alert, AlertCells } from '../components/alerts';
import { Form, SelectField, TextField, useForm } from '../components/form';
import { DataTable } from '../components/table';
import { Badge, ErrorLine, Panel, useLoad, useShownOnce } from '../ui';

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

/**
 * A list from the admin API and the acts on it: `act` runs one, `change`
 * runs one and then loads the list again. `error` is the list's or the last act's.
 */
function useManaged<T>(load: () => Promise<T>, deps: unknown[] = []) {
  const list = useLoad(load, 0, deps);
  const { error, busy, act } = useAct();
  const change = (fn: () => Promise<unknown>) =>
    void act(async () => {
      await fn();
      await list.reload();
    });
  return { list, error: list.error ?? error, busy, act, change };
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

/** A form that makes something, marked `data-manage={name}`, with its submit button last. */
function CreateForm({
  name,
  submit,
  busy,
  onSubmit,
  children,
}: {
  name: string;
  submit: string;
  busy: boolean;
  onSubmit: () => void;
  children: ComponentChildren;
}) {
  return (
    <Form class="form inline" data-manage={name} onSubmit={onSubmit}>
      {children}
      <button type="submit" disabled={busy}>
        {submit}
      </button>
    </Form>
  );
}

/** The scopes in a form's "a, b c" text. */
const scopesOf = (text: string) => text.split(/[\s,]+/).filter(Boolean);

interface Client {
  id: string;
  name: string;
  scopes: string[];
  tenant: string | null;
  createdAt: string | null;
  status: string;
}

const CREDENTIAL_COLUMNS = ['Id', 'Name', 'Scopes', 'Tenant', 'Status', 'Created'] as const;

/** The cells an API key's or an OAuth client's row starts with. */
function CredentialCells({ credential: c }: { credential: Client }) {
  return (
    <>
      <td class="mono">{c.id}</td>
      <td>{c.name}</td>
      <td class="mono">{c.scopes.join(' ')}</td>
      <td>{c.tenant ?? '—'}</td>
      <td>
        <Badge value={c.status} />
      </td>
      <td>{fmtTime(c.createdAt)}</td>
    </>
  );
}

interface Key extends Client {
  expiresAt: string | null;
  lastUsedAt: string | null;
}

function Keys({ role }: { role: Role }) {
  const { list, error, busy, change } = useManaged(() => call<{ keys: Key[] }>('GET', '/admin/keys'));
  const shown = useShownOnce('The new API key');
  const form = useForm({ name: '', scopes: '', tenant: '', expires_in: '' });
  const canManage = roleAllows(role, 'operator');
  const create = () =>
    change(async () => {
      const { name, scopes, tenant, expires_in } = form.values;
      const body: Record<string, unknown> = { name, scopes: scopesOf(scopes) };
      if (tenant !== '') body.tenant = tenant;
      if (expires_in !== '') body.expires_in = expires_in;
      const r = await call<{ key: string }>('POST', '/admin/keys', body);
      shown.show(r.key);
      form.set({ name: '', scopes: '', tenant: '', expires_in: '' });
    });
  return (
    <Panel title="API keys">
      <ErrorLine error={error} />
      {shown.element}
      {canManage && (
        <CreateForm name="create-key" submit="Create key" busy={busy} onSubmit={create}>
          <TextField form={form} name="name" label="Name" required />
          <TextField form={form} name="scopes" label="Scopes" required placeholder="orders:read" />
          <TextField form={form} name="tenant" label="Tenant" />
          <TextField form={form} name="expires_in" label="Expires in" placeholder="90d" />
        </CreateForm>
      )}
      <DataTable
        columns={[...CREDENTIAL_COLUMNS, 'Expires', 'Last used', canManage && '']}
        rows={list.data?.keys}
        row={(k) => (
          <tr key={k.id} data-key={k.id}>
            <CredentialCells credential={k} />
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
                        change(async () => {
                          const r = await call<{ key: string }>('POST', `/admin/keys/${k.id}/rotate`, {});
                          shown.show(r.key);
                        })
                      }
                    />
                    <ActButton
                      label="Revoke"
                      danger
                      confirm={`Revoke ${k.id} now?`}
                      onClick={() => change(() => call('POST', `/admin/keys/${k.id}/revoke`))}
                    />
                  </>
                )}
              </td>
            )}
          </tr>
        )}
      />
    </Panel>
  );
}

function Clients({ role }: { role: Role }) {
  const { list, error, busy, change } = useManaged(() =>
    call<{ clients: Client[] }>('GET', '/admin/clients'),
  );
  const shown = useShownOnce('The new client secret');
  const form = useForm({ name: '', scopes: '', tenant: '' });
  const canManage = roleAllows(role, 'operator');
  const create = () =>
    change(async () => {
      const { name, scopes, tenant } = form.values;
      const body: Record<string, unknown> = { name, scopes: scopesOf(scopes) };
      if (tenant !== '') body.tenant = tenant;
      const r = await call<{ client_secret: string; client: { id: string } }>('POST', '/admin/clients', body);
      shown.show(`${r.client.id}:${r.client_secret}`);
      form.set({ name: '', scopes: '', tenant: '' });
    });
  return (
    <Panel title="OAuth clients">
      <ErrorLine error={error} />
      {shown.element}
      {canManage && (
        <CreateForm name="create-client" submit="Create client" busy={busy} onSubmit={create}>
          <TextField form={form} name="name" label="Name" required />
          <TextField form={form} name="scopes" label="Scopes" required />
          <TextField form={form} name="tenant" label="Tenant" />
        </CreateForm>
      )}
      <DataTable
        columns={[...CREDENTIAL_COLUMNS, canManage && '']}
        rows={list.data?.clients}
        row={(c) => (
          <tr key={c.id}>
            <CredentialCells credential={c} />
            {canManage && (
              <td class="actions">
                {c.status === 'active' && (
                  <ActButton
                    label="Revoke"
                    danger
                    confirm={`Revoke client ${c.id}?`}
                    onClick={() => change(() => call('POST', `/admin/clients/${c.id}/revoke`))}
                  />
                )}
              </td>
            )}
          </tr>
        )}
      />
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

const SUBJECT_KINDS = ['ip', 'principal', 'api_key'];

function Blocks({ role }: { role: Role }) {
  const [all, setAll] = useState(false);
  const { list, error, busy, change } = useManaged(
    () => call<{ blocks: Block[] }>('GET', `/admin/blocks?all=${all}`),
    [all],
  );
  const form = useForm({ kind: 'ip', subject: '', duration: '1h', status: '429', reason: '' });
  const canManage = roleAllows(role, 'operator');
  const add = () =>
    change(async () => {
      const { kind, subject, duration, status, reason } = form.values;
      const body: Record<string, unknown> = { kind, subject, duration, status: Number(status) };
      if (reason !== '') body.reason = reason;
      await call('POST', '/admin/blocks', body);
      form.set({ ...form.values, subject: '', reason: '' });
    });
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
      <ErrorLine error={error} />
      {canManage && (
        <CreateForm name="add-block" submit="Add block" busy={busy} onSubmit={add}>
          <SelectField form={form} name="kind" label="Kind" options={SUBJECT_KINDS} />
          <TextField form={form} name="subject" label="Subject" required />
          <TextField form={form} name="duration" label="Duration" required />
          <SelectField form={form} name="status" label="Answer" options={['429', '403']} />
          <TextField form={form} name="reason" label="Reason" />
        </CreateForm>
      )}
      <DataTable
        columns={['Id', 'Subject', 'Answer', 'Reason', 'By', 'Until', 'State', canManage && '']}
        rows={list.data?.blocks}
        row={(b) => (
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
                    onClick={() => change(() => call('DELETE', `/admin/blocks/${b.id}`))}
                  />
                )}
              </td>
            )}
          </tr>
        )}
      />
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

const REVOCATION_KINDS = [
  ['jti', 'jti (one token)'],
  ['sub', "sub (a subject's tokens)"],
  ['client', "client (a client's tokens)"],
  ['before', 'before (all issued before)'],
] as const;

function Revocations({ role }: { role: Role }) {
  const { list, error, busy, change } = useManaged(() =>
    call<{ revocations: Revocation[] }>('GET', '/admin/revocations'),
  );
  const form = useForm({ kind: 'jti', subject: '', issuer: '', reason: '' });
  const canManage = roleAllows(role, 'operator');
  const revoke = () =>
    change(async () => {
      const { kind, subject, issuer, reason } = form.values;
      const body: Record<string, unknown> = { kind };
      if (kind === 'before') body.issued_before = subject || 'now';
      else body.subject = subject;
      if (issuer !== '') body.issuer = issuer;
      if (reason !== '') body.reason = reason;
      await call('POST', '/admin/revocations', body);
      form.set({ ...form.values, subject: '', reason: '' });
    });
  return (
    <Panel title="Token revocations">
      <ErrorLine error={error} />
      {canManage && (
        <CreateForm name="revoke-tokens" submit="Revoke tokens" busy={busy} onSubmit={revoke}>
          <SelectField form={form} name="kind" label="Kind" options={REVOCATION_KINDS} />
          <TextField
            form={form}
            name="subject"
            label={form.values.kind === 'before' ? 'Issued before (ISO time or now)' : 'Subject'}
          />
          <TextField form={form} name="issuer" label="Issuer" />
          <TextField form={form} name="reason" label="Reason" />
        </CreateForm>
      )}
      <DataTable
        columns={['Kind', 'Subject', 'Issuer', 'Revoked at', 'Kept until', 'By', 'Reason']}
        rows={list.data?.revocations}
        row={(r, i) => (
          <tr key={i}>
            <td>{r.kind}</td>
            <td class="mono">{r.subject || '—'}</td>
            <td class="mono">{r.issuer ?? '(any)'}</td>
            <td>{fmtTime(r.revokedAt)}</td>
            <td>{fmtTime(r.expiresAt)}</td>
            <td class="mono">{r.actor}</td>
            <td>{r.reason ?? ''}</td>
          </tr>
        )}
      />
    </Panel>
  );
}

function Alerts({ role }: { role: Role }) {
  const { list, error, act } = useManaged(() =>
    call<{ alerts: Alert[] }>('GET', '/admin/alerts?since=7d&limit=200'),
  );
  const [done, setDone] = useState<string | undefined>(undefined);
  const canManage = roleAllows(role, 'operator');
  return (
    <Panel title="Alerts (last 7 days)">
      <ErrorLine error={error} />
      {done !== undefined && <p class="ok">{done}</p>}
      <DataTable
        columns={[...ALERT_COLUMNS, 'First seen', 'Last seen', canManage && '']}
        rows={list.data?.alerts}
        row={(a) => (
          <tr key={a.id}>
            <AlertCells alert={a} />
            <td>{fmtTime(a.firstSeen)}</td>
            <td>{fmtTime(a.lastSeen)}</td>
            {canManage && (
              <td class="actions">
                {SUBJECT_KINDS.includes(a.subject.kind) && (
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
        )}
      />
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
  const { list, error, busy, act, change } = useManaged(() =>
    call<{ tokens: AdminToken[] }>('GET', '/admin/tokens'),
  );
  const shown = useShownOnce('The new admin token');
  const form = useForm({ name: '', role: 'viewer' });
  const [reloaded, setReloaded] = useState<string | undefined>(undefined);
  const create = () =>
    change(async () => {
      const body: Record<string, unknown> = { role: form.values.role };
      if (form.values.name !== '') body.name = form.values.name;
      const r = await call<{ token: string }>('POST', '/admin/tokens', body);
      shown.show(r.token);
      form.set({ name: '', role: 'viewer' });
    });
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
        <ErrorLine error={error} />
        {shown.element}
        <CreateForm name="create-admin-token" submit="Create admin token" busy={busy} onSubmit={create}>
          <TextField form={form} name="name" label="Name" />
          <SelectField form={form} name="role" label="Role" options={['viewer', 'operator', 'admin']} />
        </CreateForm>
        <DataTable
          columns={['Id', 'Name', 'Role', 'Status', 'Created', 'Last used', '']}
          rows={list.data?.tokens}
          row={(t) => (
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
                    onClick={() => change(() => call('DELETE', `/admin/tokens/${t.id}`))}
                  />
                )}
              </td>
            </tr>
          )}
        />
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
