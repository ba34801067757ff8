/**
 * One audit writer PROCESS for the multi-process tests (test/audit/processes.test.ts): appends with
 * `concurrency` appends in flight for `seconds` through the real writer (its own chains, its own
 * connections), records an outcome for every tenth event, closes (anchoring its heads) and prints a
 * JSON summary on stdout.
 *
 *   node --import tsx test/audit/writer-process.ts <database-url> <seconds> <name> [concurrency]
 */
import pg from 'pg';
import { createAuditWriter } from '../../src/audit/writer.ts';
import { delegateLink, rootLink, statementEvent } from './fixtures.ts';

const [url, seconds = '10', name = 'writer', concurrency = '16'] = process.argv.slice(2);
if (!url) throw new Error('usage: writer-process.ts <database-url> <seconds> <name> [concurrency]');

const pool = new pg.Pool({ connectionString: url, max: 2 });
pool.on('error', () => {});
const errors: string[] = [];
const writer = createAuditWriter(pool, { description: `test writer process ${name}`, onError: (e) => errors.push(`${e.code}: ${e.detail}`) });
// A few distinct lineages per process (stored once each), one shared by every process.
const lineages = [
  statementEvent().lineage,
  [rootLink('alice@example.com', 'planner'), delegateLink(1, `helper-${name}`, `work of ${name}`, ['pg:appdb/public.orders'])],
  [rootLink(`${name}@example.com`, name)],
];
let appended = 0;
let outcomes = 0;
const end = Date.now() + Number(seconds) * 1000;
await Promise.all(
  Array.from({ length: Number(concurrency) }, async (_, worker) => {
    for (let i = 0; Date.now() < end; i++) {
      const receipt = await writer.append(statementEvent({ lineage: lineages[(worker + i) % lineages.length]!, fingerprint: `${name}-${worker}-${i}` }));
      appended++;
      if (appended % 10 === 0) {
        await writer.recordOutcome(receipt, { rowCount: i, tag: 'SELECT' });
        outcomes++;
      }
    }
  }),
);
await writer.close();
const health = writer.health();
await pool.end();
process.stdout.write(`${JSON.stringify({ pid: process.pid, name, appended, outcomes, chains: health.events.chains, outcomeChains: health.outcomes.chains, checkpoints: health.events.checkpoints, errors })}\n`);
