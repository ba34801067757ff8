/** `--ttl` on the command line (src/commands/cli-duration.ts): a unit is required; words and sums are fine. */
import { describe, expect, it } from 'vitest';
import { parseCliDuration } from '../../src/commands/cli-duration.ts';
import { UsageError } from '../../src/commands/command.ts';

describe('parseCliDuration', () => {
  it('accepts units, words and sums', () => {
    const cases: [string, number][] = [
      ['30s', 30],
      ['300s', 300],
      ['5m', 300],
      ['1h', 3600],
      ['1d', 86400],
      ['5 minutes', 300],
      ['5min', 300],
      ['1 hour', 3600],
      ['2 Hours', 7200],
      ['90 sec', 90],
      ['1h30m', 5400],
      ['1h 30m', 5400],
      [' 5m ', 300],
    ];
    for (const [text, seconds] of cases) expect([text, parseCliDuration(text, '--ttl')]).toEqual([text, seconds]);
  });

  it('refuses a bare number, unknown units, zero and anything else, naming the option and the value', () => {
    const refusals: [string, RegExp][] = [
      ['5', /^--ttl "5" needs a unit: 5s, 5m, 5h \(a bare number is ambiguous\)$/],
      ['300', /^--ttl "300" needs a unit/],
      ['5 fortnights', /^--ttl "5 fortnights" is not a duration/],
      ['soon', /^--ttl "soon" is not a duration/],
      ['5m garbage', /^--ttl "5m garbage" is not a duration/],
      ['-5m', /is not a duration/],
      ['1.5h', /is not a duration/],
      ['0m', /^--ttl "0m" must be longer than zero$/],
      ['400d', /longer than a year/],
      ['', /^--ttl needs a duration/],
      ['5m\x1b[2K', /^--ttl "5m\\x1b\[2K" is not a duration/],
    ];
    for (const [text, message] of refusals) {
      let err: unknown;
      try {
        parseCliDuration(text, '--ttl');
      } catch (e) {
        err = e;
      }
      expect(err, text).toBeInstanceOf(UsageError);
      expect((err as Error).message, text).toMatch(message);
    }
  });
});
