/**
 * Freeze a plain JSON-like value and everything inside it, so validated configuration and verified
 * claims cannot be changed after the checks that vouched for them.
 *
 * @example
 * ```ts
 * const cfg = deepFreeze({ audiences: ['a'] }); // cfg.audiences.push('b') throws in strict mode
 * ```
 */
export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
