/**
 * The delegation tree of a token (`baton audit tree <token-id>`): every token derived from one
 * authority block shares its token id, and each attenuation extends the revocation-id chain, so
 * the lineages recorded under a token id form a tree keyed by revocation id per depth.
 */
import type pg from 'pg';
import type { LineageLink } from './event.ts';

export interface Counts {
  allowed: number;
  denied: number;
}

/** One link: a token in the family, with what it was used for. */
export interface AuditTreeNode extends LineageLink, Counts {
  /** Counts for this node and all its descendants. */
  total: Counts;
  children: AuditTreeNode[];
  /**
   * Set by {@link markRevoked}: this link or one above it is revoked (so is every token derived
   * from it); `revokedHere` when this link's own revocation id is the revoked one.
   */
  revoked?: boolean;
  revokedHere?: boolean;
}

export interface AuditTree {
  tokenId: string;
  /** Usually one: the authority block. */
  roots: AuditTreeNode[];
  /** All events recorded under this token id (including any without lineage). */
  total: Counts;
}

/**
 * Builds the delegation tree of `tokenId` from the events seen so far, with allow/deny counts per
 * link (events presented with exactly that token). Children are in order of first appearance.
 *
 * @example
 * const tree = await auditTree(pool, 'tok_01H…');
 * for (const child of tree.roots[0]?.children ?? []) console.log(child.delegatedTo, child.allowed, child.denied);
 */
export async function auditTree(pool: pg.Pool, tokenId: string): Promise<AuditTree> {
  if (typeof tokenId !== 'string' || tokenId.length === 0) throw new TypeError('auditTree: tokenId must be a non-empty string');
  // One row per distinct lineage: the tree is as large as the family, not the event count. Lineages
  // are stored once (audit_lineages) and referenced by hash; legacy rows carry theirs inline.
  const { rows } = await pool.query<{ lineage: LineageLink[] | null; allowed: number; denied: number }>(
    `SELECT coalesce(g.lineage, l.lineage) AS lineage, g.allowed, g.denied
       FROM (SELECT lineage_hash, lineage, min(seq) AS first,
                    count(*) FILTER (WHERE decision = 'allow')::int AS allowed,
                    count(*) FILTER (WHERE decision = 'deny')::int AS denied
               FROM audit_events WHERE token_id = $1
              GROUP BY lineage_hash, lineage) AS g
       LEFT JOIN audit_lineages AS l ON l.hash = g.lineage_hash
      ORDER BY g.first`,
    [tokenId],
  );
  const tree: AuditTree = { tokenId, roots: [], total: { allowed: 0, denied: 0 } };
  for (const { lineage, allowed, denied } of rows) {
    tree.total.allowed += allowed;
    tree.total.denied += denied;
    let siblings = tree.roots;
    let node: AuditTreeNode | undefined;
    for (const link of lineage ?? []) {
      node = siblings.find((n) => n.revocationId === link.revocationId);
      if (!node) {
        node = { ...link, allowed: 0, denied: 0, total: { allowed: 0, denied: 0 }, children: [] };
        siblings.push(node);
      }
      node.total.allowed += allowed;
      node.total.denied += denied;
      siblings = node.children;
    }
    if (node) {
      node.allowed += allowed;
      node.denied += denied;
    }
  }
  return tree;
}

/**
 * Marks each node of `tree` revoked when its revocation-id path (root to node) holds a revoked id:
 * a revoked link revokes its whole subtree (DESIGN.md rule 4).
 *
 * @example
 * markRevoked(tree, (ids) => revocations.firstRevoked(ids));
 */
export function markRevoked(tree: AuditTree, firstRevoked: (ids: readonly string[]) => string | undefined): AuditTree {
  const visit = (node: AuditTreeNode, path: string[]) => {
    const ids = [...path, node.revocationId];
    node.revoked = firstRevoked(ids) !== undefined;
    node.revokedHere = firstRevoked([node.revocationId]) !== undefined;
    for (const child of node.children) visit(child, ids);
  };
  for (const root of tree.roots) visit(root, []);
  return tree;
}
