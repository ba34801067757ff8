/**
 * Verification of every chain: each registered chain (one per writer lane and process, plus the
 * legacy chains written before migration 005) is re-read in chain order, in keyset pages (constant
 * memory per chain), and every hash is recomputed from the stored columns — the same mapping queries
 * use, so what a reader sees is what was verified. For each chain it also checks:
 *
 * - positions: chain_seq runs 1, 2, 3, … without gaps;
 * - lineages: the lineage an event references exists and hashes to its address;
 * - anchoring: every signed checkpoint (audit_checkpoints, plus any given from outside the database)
 *   carries a valid signature by the chain's anchor key, names a (chain_seq, hash) that is in the
 *   chain, and the chain reaches the newest checkpoint — so deleting a chain's newest entries is
 *   reported, not just changes inside it;
 * - registration: no row or checkpoint belongs to a chain that is not registered.
 *
 * It names the first broken entry of each chain.
 */
import type pg from 'pg';
import { type AuditCheckpoint, checkpointSignatureValid } from './anchor.ts';
import type { AuditEvent, AuditOutcomeRecord } from './event.ts';
import { GENESIS_HASH, canonicalJson, chainHash, legacyChainHash, sha256Hex } from './hash.ts';
import { EVENT_COLUMNS, EVENT_FROM, OUTCOME_COLUMNS, type Row, rowToEvent, rowToOutcome, touchedResources } from './rows.ts';

type Table = 'audit_events' | 'audit_outcomes';

/** The first entry of a chain that does not verify. `seq`/`id` are null when the entry is missing. */
export interface BrokenLink {
  table: Table;
  chainId: number;
  /** Position in the chain (legacy chains: null). */
  chainSeq: number | null;
  /** The row's global seq and id, when there is a row. */
  seq: number | null;
  id: string | null;
  reason: string;
}

/** What verification found for one chain. */
export interface ChainReport {
  chainId: number;
  kind: 'events' | 'outcomes';
  table: Table;
  /** Written before migration 005 (or by `audit_append`): one global chain per table, in seq order. */
  legacy: boolean;
  description: string;
  host: string | null;
  pid: number | null;
  createdAt: string;
  /** Entries verified (up to the first broken one). */
  count: number;
  /** The last entry verified. */
  head: { chainSeq: number | null; seq: number; hash: string } | null;
  /** Checkpoints checked, and the newest position they anchor (0: none). */
  checkpoints: number;
  anchoredSeq: number;
  /** Entries after the newest checkpoint: not yet protected against truncation. */
  unanchored: number;
  broken?: BrokenLink;
}

/** The whole trail: `ok` when every chain verifies; `firstBroken` is the broken entry with the lowest seq. */
export interface AuditVerification {
  ok: boolean;
  /** Events and outcomes verified. */
  count: number;
  outcomes: number;
  chains: ChainReport[];
  /** Rows and checkpoints of chains that are not registered (a removed chain leaves these). */
  strays: BrokenLink[];
  firstBroken?: BrokenLink;
}

export interface VerifyOptions {
  /** Rows per page (default 5000). */
  pageSize?: number;
  /** Checkpoints obtained outside the database (published by `onCheckpoint`): checked like stored ones. */
  anchors?: readonly AuditCheckpoint[];
  /** Chains verified at once (default 4). */
  concurrency?: number;
}

interface ChainRow {
  chain_id: string;
  kind: 'events' | 'outcomes';
  description: string;
  host: string | null;
  pid: number | null;
  created_at: Date;
  anchor_key: string | null;
}

/**
 * Verifies every chain of events and outcomes.
 *
 * @example
 * const result = await verifyAuditChain(pool);
 * for (const chain of result.chains) if (chain.broken) console.error(`chain ${chain.chainId} broken at ${chain.broken.chainSeq}: ${chain.broken.reason}`);
 */
export async function verifyAuditChain(pool: pg.Pool, options: VerifyOptions = {}): Promise<AuditVerification> {
  const pageSize = options.pageSize ?? 5000;
  if (!Number.isInteger(pageSize) || pageSize < 1) throw new TypeError('verifyAuditChain: pageSize must be a positive integer');
  const concurrency = options.concurrency ?? 4;
  const { rows: chains } = await pool.query<ChainRow>(
    'SELECT chain_id, kind, description, host, pid, created_at, anchor_key FROM audit_chains ORDER BY chain_id',
  );
  const external = new Map<number, AuditCheckpoint[]>();
  for (const a of options.anchors ?? []) external.set(a.chainId, [...(external.get(a.chainId) ?? []), a]);

  const lineages = new Set<string>(); // lineage hashes already checked
  const reports: ChainReport[] = new Array(chains.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, chains.length) }, async () => {
      while (next < chains.length) {
        const i = next++;
        reports[i] = await verifyChain(pool, chains[i]!, external.get(Number(chains[i]!.chain_id)) ?? [], lineages, pageSize);
      }
    }),
  );
  const shown = reports.filter((r) => !r.legacy || r.count > 0 || r.broken);
  const strays = await strayEntries(pool, chains, external);

  const broken = [...shown.flatMap((r) => (r.broken ? [r.broken] : [])), ...strays].sort(
    (a, b) => (a.seq ?? Number.MAX_SAFE_INTEGER) - (b.seq ?? Number.MAX_SAFE_INTEGER) || a.chainId - b.chainId,
  );
  const sum = (table: Table) => shown.filter((r) => r.table === table).reduce((n, r) => n + r.count, 0);
  const result: AuditVerification = { ok: broken.length === 0, count: sum('audit_events'), outcomes: sum('audit_outcomes'), chains: shown, strays };
  if (broken[0]) result.firstBroken = broken[0];
  return result;
}

async function verifyChain(
  pool: pg.Pool,
  chain: ChainRow,
  external: AuditCheckpoint[],
  lineages: Set<string>,
  pageSize: number,
): Promise<ChainReport> {
  const chainId = Number(chain.chain_id);
  const table: Table = chain.kind === 'events' ? 'audit_events' : 'audit_outcomes';
  // Legacy chains are the rows without chain_id, in global seq order (1 = events, 2 = outcomes).
  const legacy = chain.anchor_key === null && chainId <= 2;
  const report: ChainReport = {
    chainId,
    kind: chain.kind,
    table,
    legacy,
    description: chain.description,
    host: chain.host,
    pid: chain.pid,
    createdAt: chain.created_at.toISOString(),
    count: 0,
    head: null,
    checkpoints: 0,
    anchoredSeq: 0,
    unanchored: 0,
  };
  const fail = (reason: string, at: { chainSeq: number | null; seq: number | null; id: string | null }) => {
    report.broken = { table, chainId, ...at, reason };
    return report;
  };

  // Checkpoints first (few): each must be signed by the chain's key; their positions are checked on the walk.
  const { rows: stored } = legacy
    ? { rows: [] as Row[] }
    : await pool.query('SELECT chain_seq, hash, signed_at, signature FROM audit_checkpoints WHERE chain_id = $1 ORDER BY chain_seq', [chainId]);
  const checkpoints: AuditCheckpoint[] = [
    ...stored.map((r) => ({ chainId, chainSeq: Number(r.chain_seq), hash: String(r.hash), signedAt: String(r.signed_at), signature: String(r.signature) })),
    ...external,
  ].sort((a, b) => a.chainSeq - b.chainSeq);
  for (const cp of checkpoints) {
    if (chain.anchor_key === null || !checkpointSignatureValid(cp, chain.anchor_key)) {
      return fail(
        `checkpoint at chain seq ${cp.chainSeq} (signed at ${cp.signedAt}) does not verify against the chain's anchor key: ` +
          'the checkpoint was forged or the chain registration altered',
        { chainSeq: cp.chainSeq, seq: null, id: null },
      );
    }
  }
  report.checkpoints = checkpoints.length;
  report.anchoredSeq = checkpoints.at(-1)?.chainSeq ?? 0;
  let nextCheckpoint = 0;

  const columns = table === 'audit_events' ? `${EVENT_COLUMNS}, l.hash AS stored_lineage_hash, e.resources` : OUTCOME_COLUMNS;
  const from = table === 'audit_events' ? EVENT_FROM : 'audit_outcomes AS e';
  const toEntry: (row: Row) => AuditEvent | AuditOutcomeRecord = table === 'audit_events' ? rowToEvent : rowToOutcome;
  const page = legacy
    ? `SELECT ${columns} FROM ${from} WHERE e.chain_id IS NULL AND e.seq > $1 ORDER BY e.seq LIMIT $2`
    : `SELECT ${columns} FROM ${from} WHERE e.chain_id = $3 AND e.chain_seq > $1 ORDER BY e.chain_seq LIMIT $2`;

  let prev = GENESIS_HASH;
  let after = 0;
  for (;;) {
    const { rows } = await pool.query(page, legacy ? [after, pageSize] : [after, pageSize, chainId]);
    for (const row of rows) {
      const entry = toEntry(row) as (AuditEvent | AuditOutcomeRecord) & { lineageHash?: string; lineage?: unknown };
      const at = { chainSeq: entry.chainSeq ?? null, seq: entry.seq, id: entry.id };
      if (!legacy && entry.chainSeq !== report.count + 1) {
        return fail(
          `chain seq ${entry.chainSeq} follows ${report.count}: an entry was removed (or inserted) before this one`,
          at,
        );
      }
      if (entry.prevHash !== prev) {
        return fail('prev_hash does not match the previous entry: an entry was removed, inserted or reordered before this one', at);
      }
      const hashOk = legacy
        ? chainHash({ ...entry, chainId: undefined, chainSeq: undefined }) === entry.hash || legacyChainHash(entry) === entry.hash
        : chainHash(entry) === entry.hash;
      if (!hashOk) return fail("hash does not match the entry's content: the entry was altered", at);
      if (table === 'audit_events' && !sameSet(row.resources as string[] | null, touchedResources(entry as AuditEvent))) {
        return fail('the resources query helper does not match the entry: it was altered (the entry would be missed by resource queries)', at);
      }
      if (!legacy && table === 'audit_events') {
        const address = entry.lineageHash!;
        if (row.stored_lineage_hash === null) return fail(`lineage ${address} is missing: the stored lineage was removed`, at);
        if (!lineages.has(address)) {
          if (sha256Hex(canonicalJson(entry.lineage)) !== address) {
            return fail(`lineage ${address} does not match its hash: the stored lineage was altered`, at);
          }
          lineages.add(address);
        }
      }
      for (; nextCheckpoint < checkpoints.length && checkpoints[nextCheckpoint]!.chainSeq <= at.chainSeq!; nextCheckpoint++) {
        const cp = checkpoints[nextCheckpoint]!;
        if (cp.chainSeq === at.chainSeq && cp.hash !== entry.hash) {
          return fail(`entry differs from the checkpoint signed at ${cp.signedAt}: the chain was rewritten from here on`, at);
        }
      }
      prev = entry.hash;
      after = legacy ? entry.seq : entry.chainSeq!;
      report.count++;
      report.head = { chainSeq: entry.chainSeq ?? null, seq: entry.seq, hash: entry.hash };
    }
    if (rows.length < pageSize) break;
  }
  const last = report.head?.chainSeq ?? 0;
  if (!legacy && report.anchoredSeq > last) {
    const cp = checkpoints.at(-1)!;
    return fail(
      `the chain ends at chain seq ${last} but a checkpoint signed at ${cp.signedAt} anchors chain seq ${cp.chainSeq}: ` +
        `the newest ${cp.chainSeq - last} or more entries were removed`,
      { chainSeq: last + 1, seq: null, id: null },
    );
  }
  report.unanchored = legacy ? 0 : last - report.anchoredSeq;
  return report;
}

function sameSet(stored: string[] | null, expected: string[]): boolean {
  const got = [...new Set(stored ?? [])].sort();
  return got.length === expected.length && got.every((r, i) => r === expected[i]);
}

/** Rows and checkpoints of chains that are not registered (or registered for the other table). */
async function strayEntries(pool: pg.Pool, chains: ChainRow[], external: Map<number, AuditCheckpoint[]>): Promise<BrokenLink[]> {
  const found: BrokenLink[] = [];
  for (const [table, kind] of [
    ['audit_events', 'events'],
    ['audit_outcomes', 'outcomes'],
  ] as const) {
    const { rows } = await pool.query(
      `SELECT e.chain_id, e.chain_seq, e.seq, e.id FROM ${table} AS e
        WHERE e.chain_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM audit_chains AS c WHERE c.chain_id = e.chain_id AND c.kind = $1 AND c.anchor_key IS NOT NULL)
        ORDER BY e.seq LIMIT 1`,
      [kind],
    );
    for (const r of rows) {
      found.push({
        table,
        chainId: Number(r.chain_id),
        chainSeq: Number(r.chain_seq),
        seq: Number(r.seq),
        id: String(r.id),
        reason: `chain ${r.chain_id} is not registered for ${table}: the entry cannot be checked`,
      });
    }
  }
  const registered = new Set(chains.map((c) => Number(c.chain_id)));
  const { rows } = await pool.query('SELECT chain_id, max(chain_seq) AS chain_seq FROM audit_checkpoints GROUP BY chain_id');
  const anchored = [...rows.map((r) => [Number(r.chain_id), Number(r.chain_seq)] as const), ...[...external].map(([id, cps]) => [id, Math.max(...cps.map((c) => c.chainSeq))] as const)];
  for (const [chainId, chainSeq] of anchored) {
    if (!registered.has(chainId)) {
      found.push({
        table: 'audit_events',
        chainId,
        chainSeq,
        seq: null,
        id: null,
        reason: `checkpoints anchor chain ${chainId} up to chain seq ${chainSeq}, but the chain is not registered: it was removed`,
      });
    }
  }
  return found;
}
