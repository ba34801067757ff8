/**
 * Transaction pooling against a model (issue 15 point 5): two sessions share TWO upstream connections,
 * one of which a third session takes away (an open transaction) at random moments — so connections
 * change hands (and are reset) between almost every step, and a session also comes back to a
 * connection it used before, whose state it changed elsewhere meanwhile — with room for only two
 * prepared statements per connection (so statements are evicted and prepared again). Random sequences of Parse, Bind +
 * Execute, Describe, Close and simple queries — each pipeline ended by Sync — must give each session
 * exactly what PostgreSQL would give it alone: its own statement's value, or 26000 for a statement it
 * does not have, never a row or a description of the other session's.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgProxy } from '../../../src/proxy/pg/server.ts';
import { RawClient, createDatabase, dropDatabase, serialize, startProxy, testGate, type BackendMsg } from './helpers.ts';

let db: string;
let proxy: PgProxy;
let port: number;

beforeAll(async () => {
  db = await createDatabase();
  const { gate } = testGate(db);
  ({ proxy, port } = await startProxy({
    gate,
    pooling: { size: 2, acquireTimeoutMs: 10_000, idleTimeoutMs: 60_000, maxStatementsPerConnection: 2, idleInTransactionTimeoutMs: 0 },
  }));
});

afterAll(async () => {
  await proxy?.close();
  if (db) await dropDatabase(db);
});

const NAMES = ['', 's1', 's2', 's3'] as const;
type Name = (typeof NAMES)[number];

type Step =
  | { op: 'hold' }
  | { who: 0 | 1; op: 'parse'; name: Name; k: number }
  | { who: 0 | 1; op: 'exec' | 'describe' | 'close'; name: Name }
  | { who: 0 | 1; op: 'query'; k: number };

const who = fc.constantFrom<0 | 1>(0, 1);
const name = fc.constantFrom<Name>(...NAMES);
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ op: fc.constant('hold' as const) }),
  fc.record({ who, op: fc.constant('parse' as const), name, k: fc.integer({ min: 0, max: 99 }) }),
  fc.record({ who, op: fc.constantFrom('exec' as const, 'describe' as const, 'close' as const), name }),
  fc.record({ who, op: fc.constant('query' as const), k: fc.integer({ min: 0, max: 99 }) }),
);

/** Each session's statement column is named after the session: a description shows whose it is. */
const textOf = (session: number, k: number) => `SELECT '${session}:${k}'::text AS from_${session}`;

const rows = (msgs: BackendMsg[]) => msgs.filter((m) => m.name === 'dataRow').map((m) => String(m.fields![0]));
const columns = (msgs: BackendMsg[]) =>
  msgs.filter((m) => m.name === 'rowDescription').flatMap((m) => (m.fields as { name: string }[]).map((f) => f.name));
const errors = (msgs: BackendMsg[]) => msgs.filter((m) => m.name === 'error').map((m) => m.code);

describe('two sessions on one pooled connection', () => {
  it('each sees only its own statements, as if alone', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 5, maxLength: 30 }), async (steps) => {
        const clients = [await RawClient.connect(port), await RawClient.connect(port)];
        /** Takes one of the two connections away while it holds a transaction open. */
        const holder = await RawClient.connect(port);
        let holding = false;
        /** The model: what each session has prepared, name → k. */
        const model = [new Map<Name, number>(), new Map<Name, number>()];
        try {
          for (const s of steps) {
            if (s.op === 'hold') {
              holder.send(serialize.query(holding ? 'COMMIT' : 'BEGIN; SELECT 1'));
              expect(errors(await holder.untilReady())).toEqual([]);
              holding = !holding;
              continue;
            }
            const c = clients[s.who]!;
            const mine = model[s.who]!;
            if (s.op === 'parse') {
              c.send(serialize.parse({ name: s.name, text: textOf(s.who, s.k) }), serialize.sync());
              const msgs = await c.untilReady();
              expect(errors(msgs)).toEqual([]);
              mine.set(s.name, s.k);
            } else if (s.op === 'exec') {
              c.send(serialize.bind({ statement: s.name }), serialize.execute({}), serialize.sync());
              const msgs = await c.untilReady();
              const k = mine.get(s.name);
              if (k === undefined) {
                expect(errors(msgs)).toEqual(['26000']);
                expect(rows(msgs)).toEqual([]);
              } else {
                expect(errors(msgs)).toEqual([]);
                expect(rows(msgs)).toEqual([`${s.who}:${k}`]);
              }
            } else if (s.op === 'describe') {
              c.send(serialize.describe({ type: 'S', name: s.name }), serialize.sync());
              const msgs = await c.untilReady();
              if (mine.has(s.name)) expect(columns(msgs)).toEqual([`from_${s.who}`]);
              else {
                expect(errors(msgs)).toEqual(['26000']);
                expect(columns(msgs)).toEqual([]);
              }
            } else if (s.op === 'close') {
              c.send(serialize.close({ type: 'S', name: s.name }), serialize.sync());
              const msgs = await c.untilReady();
              expect(errors(msgs)).toEqual([]);
              mine.delete(s.name);
            } else if (s.op === 'query') {
              c.send(serialize.query(textOf(s.who, s.k)));
              expect(rows(await c.untilReady())).toEqual([`${s.who}:${s.k}`]);
            }
          }
        } finally {
          for (const c of [...clients, holder]) c.end();
        }
      }),
      {
        numRuns: 60,
        examples: [
          // each session's unnamed statement on the one connection, in turn
          [[{ who: 0, op: 'parse', name: '', k: 1 }, { who: 1, op: 'parse', name: '', k: 2 }, { who: 0, op: 'exec', name: '' }, { who: 1, op: 'exec', name: '' }]],
          // a session's named statement evicted while another's fill the connection, then used again
          [[{ who: 0, op: 'parse', name: 's1', k: 1 }, { who: 1, op: 'parse', name: 's2', k: 2 }, { who: 1, op: 'parse', name: 's3', k: 3 }, { who: 0, op: 'exec', name: 's1' }, { who: 0, op: 'describe', name: 's2' }]],
        ],
      },
    );
    expect(proxy.upstreamStats()!.open).toBeLessThanOrEqual(2);
  }, 120_000);
});
