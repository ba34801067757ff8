/**
 * Thrown inside the classifier when a statement cannot be classified safely; `classifySql` turns it
 * into `{ ok: false, code: 'BATON_ERR_SQL_UNSUPPORTED' }`. The reason is sanitised on construction,
 * because parts of it (node-type names) come from the parser.
 */
export class Unsupported extends Error {
  override readonly name = 'Unsupported';

  constructor(reason: string) {
    super(safeReason(reason));
  }
}

/**
 * Keep only characters that cannot carry SQL text or secrets in a meaningful way, and bound the
 * length. Callers build reasons from fixed words, node-type names and numbers; this is the backstop.
 *
 * @example safeReason("unsupported node Foo'; --") === 'unsupported node Foo --'
 */
export function safeReason(reason: string): string {
  return reason.replace(/[^A-Za-z0-9 _.,:()-]/g, '').slice(0, 120);
}
