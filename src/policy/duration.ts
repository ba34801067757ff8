/** Durations as people write them: `30s`, `5m`, `2h`, `1d`, or a number of seconds. */
const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86400 } as const;

/**
 * @example parseDuration('5m') // 300
 * @throws TypeError on anything else
 */
export function parseDuration(value: string | number): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value <= 0 || !Number.isInteger(value)) {
      throw new TypeError('duration must be a positive whole number of seconds');
    }
    return value;
  }
  const m = /^(\d{1,9})([smhd]?)$/.exec(value.trim());
  if (!m) throw new TypeError(`duration "${value.slice(0, 20)}" must look like 30s, 5m, 2h, 1d or a number of seconds`);
  const seconds = Number(m[1]) * UNIT_SECONDS[(m[2] || 's') as keyof typeof UNIT_SECONDS];
  if (seconds <= 0) throw new TypeError('duration must be positive');
  return seconds;
}
