/**
 * The Portcullis web console: a small Preact app served by the admin
 * listener. It logs in with an admin token (traded for an HttpOnly session
 * cookie; the token is not kept) and then calls the admin API.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import {
  ApiError,
  call,
  currentSession,
  errorText,
  login,
  roleAllows,
  type Session,
  useSession,
} from './api';
import { Form } from './components/form';
import { Audit } from './pages/audit';
import { Explain } from './pages/explain';
import { Live } from './pages/live';
import { Manage } from './pages/manage';
import { Overview } from './pages/overview';
import { Routes } from './pages/routes';
import './app.css';

const PAGES = [
  ['overview', 'Overview'],
  ['live', 'Live'],
  ['routes', 'Routes'],
  ['explain', 'Explain'],
  ['manage', 'Manage'],
  ['audit', 'Audit'],
] as const;

function route(): { page: string; sub: string } {
  const [page = 'overview', sub = ''] = location.hash.replace(/^#\/?/, '').split('/');
  return { page, sub };
}

function Login({ onLogin, note }: { onLogin: (s: Session) => void; note: string | undefined }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  return (
    <main class="login">
      <Form
        class="form login-form"
        onSubmit={() => {
          setBusy(true);
          setError(undefined);
          login(token)
            .then((s) => {
              setToken('');
              onLogin(s);
            })
            .catch((err: unknown) =>
              setError(
                err instanceof ApiError && err.status === 401
                  ? 'That admin token is not valid.'
                  : errorText(err),
              ),
            )
            .finally(() => setBusy(false));
        }}
      >
        <h1>Portcullis console</h1>
        {note !== undefined && <p class="muted">{note}</p>}
        <label>
          Admin token
          <input
            type="password"
            name="token"
            autocomplete="off"
            placeholder="pcla_…"
            required
            value={token}
            onInput={(ev) => setToken((ev.target as HTMLInputElement).value)}
          />
        </label>
        <button type="submit" disabled={busy}>
          Log in
        </button>
        {error !== undefined && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <p class="muted small">
          Make one with <code>portcullis admin tokens create --role viewer|operator|admin</code>. It is
          exchanged for a session cookie and not kept by the page.
        </p>
      </Form>
    </main>
  );
}

function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [note, setNote] = useState<string | undefined>(undefined);
  const [where, setWhere] = useState(route());

  useSession(session ?? null, () => {
    setNote('Your session has ended; log in again.');
    setSession(null);
  });

  useEffect(() => {
    currentSession().then(setSession, () => setSession(null));
    const onHash = () => setWhere(route());
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  if (session === undefined) return <p class="boot">Loading…</p>;
  if (session === null) return <Login onLogin={setSession} note={note} />;

  const logout = () => {
    call('DELETE', '/admin/session').finally(() => {
      setNote('You have logged out.');
      setSession(null);
    });
  };

  return (
    <div class="shell">
      <header class="top-bar">
        <span class="brand">Portcullis</span>
        <nav>
          {PAGES.map(([id, name]) => (
            <a key={id} href={`#/${id}`} class={where.page === id ? 'active' : ''} data-nav={id}>
              {name}
            </a>
          ))}
        </nav>
        <span class="who" data-role={session.role}>
          {session.name} · {session.role}
          {!roleAllows(session.role, 'operator') && ' (read only)'}
        </span>
        <button type="button" class="quiet" onClick={logout}>
          Log out
        </button>
      </header>
      <main>
        {where.page === 'overview' && <Overview />}
        {where.page === 'live' && <Live />}
        {where.page === 'routes' && <Routes />}
        {where.page === 'explain' && <Explain />}
        {where.page === 'manage' && <Manage session={session} tab={where.sub} />}
        {where.page === 'audit' && <Audit />}
        {!PAGES.some(([id]) => id === where.page) && <p>No such page.</p>}
      </main>
    </div>
  );
}

const root = document.getElementById('app');
if (root !== null) {
  root.textContent = '';
  render(<App />, root);
}
