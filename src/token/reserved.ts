/**
 * Reserved predicate names in non-authority blocks (DESIGN.md rule 9: only the authority block
 * grants). A block's checks trust the authority block and the block itself, so a block that states
 * `resource("pg:appdb/public.orders")` and `operation("read")` satisfies its own "orders, read only"
 * checks whatever the proxy is asked: lineage, inspect and the audit would show a restriction that
 * is not enforced. Third-party blocks are held to the same rule.
 */
import type { DecodedBlock, DecodedToken } from './wire/index.ts';
import { LINEAGE_FACTS, RESERVED_PREDICATES } from './vocabulary.ts';

/** Where a non-authority block defines a reserved name, or undefined. */
export function reservedNameUse(token: DecodedToken): string | undefined {
  for (const block of token.blocks.slice(1)) {
    const found = inBlock(block);
    if (found) return found;
  }
  return undefined;
}

function inBlock(block: DecodedBlock): string | undefined {
  const at = `block ${block.index}${block.externalKey ? ' (third-party)' : ''}`;
  const fact = block.facts.find((f) => RESERVED_PREDICATES.includes(f.name));
  if (fact) return `${at} states a fact named "${fact.name}", which only the broker or the authorizer may supply`;
  // lineage facts must be stated, never derived: a rule could make them depend on the request
  const rule = block.rules.find((r) => RESERVED_PREDICATES.includes(r.head.name) || LINEAGE_FACTS.includes(r.head.name));
  if (rule) return `${at} has a rule deriving "${rule.head.name}", a name reserved for the broker, the authorizer or lineage`;
  return undefined;
}
