/**
 * DIAGNOSTIC ONLY: an audit writer that records nothing and answers at once. The proxy benchmark
 * runs a second proxy with it to separate the cost of the durable audit trail from the proxy's own
 * work. Never a product configuration (DESIGN.md rule 6).
 */
import type { AuditWriter } from '../../src/audit/writer.ts';

export function memoryAuditWriter(): AuditWriter {
  let seq = 0;
  const chain = () => ({ ok: true, pending: 0, pendingBytes: 0, committed: seq, batches: seq, failed: 0, shed: 0 });
  return {
    async append() {
      seq++;
      return { seq, id: `bench-${seq}`, time: new Date().toISOString(), hash: '' };
    },
    async recordOutcome(receipt) {
      seq++;
      return { seq, id: `bench-${seq}`, eventId: receipt.id, hash: '' };
    },
    health() {
      return { ok: true, closed: false, events: chain(), outcomes: chain() };
    },
    async close() {},
  };
}
