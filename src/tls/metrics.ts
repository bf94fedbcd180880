/** Prometheus metrics about the listener's certificates. */
import { Gauge, type Registry } from 'prom-client';
import type { CertificateInfo } from './certificates.js';

/**
 * Registers `portcullis_tls_certificate_expiry_timestamp_seconds{name,file}`:
 * each presented certificate's notAfter, read at scrape time, so a reload
 * shows at once. Alert on `… - time() < 14 * 86400`.
 */
export function registerCertificateMetrics(
  registry: Registry,
  certificates: () => readonly CertificateInfo[],
): Gauge<'name' | 'file'> {
  return new Gauge({
    name: 'portcullis_tls_certificate_expiry_timestamp_seconds',
    help: 'Expiry (notAfter) of each certificate the public listener presents, as a Unix timestamp.',
    labelNames: ['name', 'file'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const c of certificates()) {
        this.set({ name: c.name, file: c.file }, Math.floor(c.notAfter.getTime() / 1000));
      }
    },
  });
}
