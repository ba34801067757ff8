/**
 * duplicateKey (src/proxy/http/json-keys.ts): a repeated key anywhere in a JSON text, compared after
 * unescaping — checked on hand-picked cases and fuzzed against a reference recursive-descent parser.
 */
import { describe, expect, it } from 'vitest';
import { duplicateKey } from '../../../src/proxy/http/json-keys.ts';

describe('duplicateKey', () => {
  it.each([
    ['{"a":1,"b":2}', undefined],
    ['{"a":1,"a":2}', 'a'],
    ['{"a":{"b":1},"c":{"b":2}}', undefined],
    ['{"a":{"b":1,"b":2}}', 'b'],
    ['[{"a":1},{"a":2}]', undefined],
    ['[{"a":1,"a":2}]', 'a'],
    ['{"name":"x","n\\u0061me":"y"}', 'name'],
    ['{"a\\"b":1,"a\\"b":2}', 'a"b'],
    ['{"k":"\\"a\\":1,\\"a\\":2","a":3}', undefined], // keys inside string values are not keys
    ['{"k":["a","a"],"a":1}', undefined], // array strings are values
    ['{"":1,"":2}', ''],
    ['"a"', undefined],
    ['[]', undefined],
    ['{"a":[{"x":1}],"b":[{"x":2,"y":{"x":3}}]}', undefined],
    ['{"params":{"name":"delete_everything","name":"search_orders"}}', 'name'],
  ])('%s → %s', (text, expected) => {
    JSON.parse(text); // the scanner's precondition
    expect(duplicateKey(text)).toBe(expected);
  });

  it('agrees with a reference parser on 3,000 random documents', () => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const KEYS = ['a', 'b', 'name', 'n\\u0061me', 'a\\"', '', '\\u00e9', 'é'];
    const value = (depth: number): string => {
      const r = rand(depth > 3 ? 3 : 6);
      if (r === 0) return String(rand(100));
      if (r === 1) return `"${KEYS[rand(KEYS.length)]}"`;
      if (r === 2) return rand(2) ? 'true' : 'null';
      if (r === 3) return `[${Array.from({ length: rand(4) }, () => value(depth + 1)).join(',')}]`;
      return `{${Array.from({ length: rand(4) }, () => `"${KEYS[rand(KEYS.length)]}":${value(depth + 1)}`).join(',')}}`;
    };
    for (let i = 0; i < 3000; i++) {
      const text = value(0);
      expect([text, duplicateKey(text)]).toEqual([text, referenceDuplicate(text)]);
    }
  });
});

/** A small recursive-descent JSON reader that reports the first repeated key (in document order). */
function referenceDuplicate(text: string): string | undefined {
  let i = 0;
  let found: string | undefined;
  const ws = () => {
    while (/\s/.test(text[i] ?? '')) i++;
  };
  const str = (): string => {
    const start = i;
    i++;
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const val = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const keys = new Set<string>();
      ws();
      if (text[i] === '}') return void i++;
      for (;;) {
        ws();
        const k = str();
        if (keys.has(k) && found === undefined) found = k;
        keys.add(k);
        ws();
        i++; // :
        val();
        ws();
        if (text[i++] === '}') return;
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') return void i++;
      for (;;) {
        val();
        ws();
        if (text[i++] === ']') return;
      }
    }
    if (c === '"') return void str();
    while (i < text.length && !/[,\]}\s]/.test(text[i]!)) i++;
  };
  val();
  return found;
}
