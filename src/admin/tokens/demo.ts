/**
 * The demo (`npm start`) prints a fresh admin token, so the admin API can be
 * tried at once. Like every token, only its digest is stored; the act is audited.
 */
import { resolvePepper } from '../../keys/authenticator.js';
import type { Running } from '../../runtime.js';
import { createAdminTokenStore } from './store.js';

/** Makes an `admin` token for the demo, or resolves to undefined when the admin API is off or it fails. */
export async function issueDemoAdminToken(running: Running, dataDir: string): Promise<string | undefined> {
  if (running.admin === undefined) return undefined;
  try {
    const tokens = createAdminTokenStore(running.store, { pepper: () => resolvePepper(undefined, dataDir) });
    const { record, token } = await tokens.create({ name: 'demo', role: 'admin', createdBy: 'demo' });
    running.events.emit({
      type: 'admin',
      time: new Date().toISOString(),
      action: 'admin_token.created',
      actor: 'demo',
      target: record.id,
      detail: { name: record.name, role: record.role },
    });
    return token;
  } catch {
    return undefined;
  }
}
