/**
 * `--ttl` as people type it on a command line. A unit is required: `--ttl 5` used to mean five
 * seconds, which nobody typing it meant, so a bare number is refused and says how to write it.
 *
 * Accepted: `30s`, `5m`, `2h`, `1d`, the words (`5 minutes`, `5min`, `1 hour`, `90 sec`, …) as one
 * quoted argument, and sums (`1h30m`, `1h 30m`).
 */
import { UsageError } from './command.ts';
import { terminalText } from './terminal-text.ts';

const UNITS: Record<string, number> = {};
for (const [seconds, names] of [
  [1, ['s', 'sec', 'secs', 'second', 'seconds']],
  [60, ['m', 'min', 'mins', 'minute', 'minutes']],
  [3600, ['h', 'hr', 'hrs', 'hour', 'hours']],
  [86400, ['d', 'day', 'days']],
] as const) {
  for (const n of names) UNITS[n] = seconds;
}

/** Upper bound: a year (the broker and the parent token clamp far below this anyway). */
const MAX_SECONDS = 366 * 86400;

/**
 * @example parseCliDuration('5m', '--ttl') // 300
 * @example parseCliDuration('5 minutes', '--ttl') // 300
 * @throws UsageError naming the option and the value (`--ttl "5": a bare number is ambiguous …`)
 */
export function parseCliDuration(value: string, option: string): number {
  const text = value.trim().toLowerCase();
  const shown = `${option} "${terminalText(value.slice(0, 40))}"`;
  if (/^\d+$/.test(text)) throw new UsageError(`${shown} needs a unit: ${text}s, ${text}m, ${text}h (a bare number is ambiguous)`);
  const part = /(\d{1,9})\s*([a-z]+)\s*/y;
  let seconds = 0;
  let at = 0;
  while (at < text.length) {
    part.lastIndex = at;
    const m = part.exec(text);
    const unit = m ? UNITS[m[2]!] : undefined;
    if (!m || unit === undefined) throw new UsageError(`${shown} is not a duration: write 30s, 5m, 2h, 1d or "5 minutes"`);
    seconds += Number(m[1]) * unit;
    at = part.lastIndex;
  }
  if (!text) throw new UsageError(`${option} needs a duration: 30s, 5m, 2h or 1d`);
  if (seconds <= 0) throw new UsageError(`${shown} must be longer than zero`);
  if (seconds > MAX_SECONDS) throw new UsageError(`${shown} is longer than a year`);
  return seconds;
}
