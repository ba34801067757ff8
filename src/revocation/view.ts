/** What a data-path enforcer needs to know about revocations. */
export interface RevocationView {
  /**
   * Throws BatonError BATON_ERR_REVOCATION_STALE when this process cannot confirm its revocation set
   * is current (fail closed).
   */
  assertCurrent(): void;
  /** The first of `ids` that is revoked, if any. A token is dead when any id of its chain is. */
  firstRevoked(ids: readonly string[]): string | undefined;
}
