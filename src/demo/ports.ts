/**
 * The demo's ports from the environment, so that two demos can run on one
 * machine: `PORTCULLIS_PORT` (the gateway, read by the config loader),
 * `PORTCULLIS_DEMO_HTTP_PORT` (the redirect listener) and
 * `PORTCULLIS_ADMIN_PORT` (the admin listener, 9090 in demo/portcullis.yaml).
 */

/** The environment variable that overrides the demo's admin port. */
export const ADMIN_PORT_ENV = 'PORTCULLIS_ADMIN_PORT';

/**
 * The admin port `PORTCULLIS_ADMIN_PORT` asks for (0: any free port), or
 * undefined when it is not set.
 *
 * @throws TypeError when it is set to anything but a port number 0-65535.
 */
export function demoAdminPort(env: NodeJS.ProcessEnv): number | undefined {
  const text = env[ADMIN_PORT_ENV];
  if (text === undefined || text === '') return undefined;
  const port = /^\d{1,5}$/.test(text.trim()) ? Number(text.trim()) : Number.NaN;
  if (!Number.isInteger(port) || port > 65535) {
    throw new TypeError(`${ADMIN_PORT_ENV} must be a port number 0-65535, got ${JSON.stringify(text)}`);
  }
  return port;
}

/** Sets the raw config's `admin.port` from `PORTCULLIS_ADMIN_PORT`, when it is set. */
export function applyDemoAdminPort(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): void {
  const port = demoAdminPort(env);
  if (port === undefined) return;
  raw.admin ??= {};
  (raw.admin as Record<string, unknown>).port = port;
}
