/** Small shared pieces of the console's pages. */
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { errorText } from './api';

export function ErrorLine({ error }: { error: unknown }) {
  if (error === undefined || error === null) return null;
  return (
    <p class="error" role="alert">
      {errorText(error)}
    </p>
  );
}

export function Badge({ value }: { value: string }) {
  return <span class={`badge badge-${value.replace(/[^a-z0-9_-]/gi, '')}`}>{value}</span>;
}

export function Json({ value }: { value: unknown }) {
  return <pre class="json">{JSON.stringify(value, null, 2)}</pre>;
}

export function Panel({
  title,
  children,
  actions,
}: {
  title: string;
  children: ComponentChildren;
  actions?: ComponentChildren;
}) {
  return (
    <section class="panel">
      <header class="panel-head">
        <h2>{title}</h2>
        {actions}
      </header>
      {children}
    </section>
  );
}

/**
 * Loads `load()` now and every `everyMs` (0: once), while the page shows.
 * Answers the data, the last error, and a function to load again.
 */
export function useLoad<T>(load: () => Promise<T>, everyMs = 0, deps: unknown[] = []) {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const loadRef = useRef(load);
  loadRef.current = load;
  const reload = useCallback(async () => {
    try {
      setData(await loadRef.current());
      setError(undefined);
    } catch (err) {
      setError(err);
    }
  }, []);
  useEffect(() => {
    void reload();
    if (everyMs <= 0) return;
    const timer = setInterval(() => void reload(), everyMs);
    return () => clearInterval(timer);
  }, deps);
  return { data, error, reload };
}

/** A secret shown once, right after it was made; gone from the page when dismissed. */
export function ShownOnce({
  label,
  secret,
  onDismiss,
}: {
  label: string;
  secret: string;
  onDismiss: () => void;
}) {
  const [copied, setCopied] = useState(false);
  return (
    <div class="shown-once" role="status">
      <p>
        <strong>{label}</strong> — shown once: copy it now, it cannot be shown again.
      </p>
      <code class="secret" data-secret>
        {secret}
      </code>
      <div class="row">
        <button
          type="button"
          onClick={() =>
            void navigator.clipboard?.writeText(secret).then(
              () => setCopied(true),
              () => setCopied(false),
            )
          }
        >
          {copied ? 'Copied' : 'Copy'}
        </button>
        <button type="button" onClick={onDismiss}>
          Done
        </button>
      </div>
    </div>
  );
}

/** A secret to show once, as ShownOnce does: `show` it, and put `element` on the page. */
export function useShownOnce(label: string) {
  const [secret, setSecret] = useState<string | undefined>(undefined);
  const element =
    secret === undefined ? null : (
      <ShownOnce label={label} secret={secret} onDismiss={() => setSecret(undefined)} />
    );
  return { show: setSecret, element };
}
