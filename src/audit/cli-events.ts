/**
 * Administrative acts done by a CLI (keys, clients, blocks) go into the same
 * audit chain as the gateway's, under the same lock, signed.
 */
import type { GatewayConfig } from '../config/types.js';
import type { Db } from '../store/types.js';
import { recordAdminEvent } from './audit-log.js';
import { compileAudit } from './schema.js';
import { resolveAuditSigner } from './signing.js';

/**
 * Records `action` on `target` by the CLI. Rejects when the event cannot be
 * written: the caller reports that the act happened but is not audited.
 */
export function auditCliAct(
  db: Db,
  config: GatewayConfig | undefined,
  dataDir: string,
  action: string,
  target: string,
  detail?: Record<string, string | number | boolean>,
): Promise<void> {
  const settings = config?.audit ?? compileAudit(undefined);
  return recordAdminEvent(
    db,
    { type: 'admin', time: new Date().toISOString(), action, actor: 'cli', target, detail },
    { settings, signer: resolveAuditSigner(settings.signingKey, dataDir) },
  );
}
