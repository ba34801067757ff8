/**
 * Duplicate object keys in JSON text. `JSON.parse` keeps the LAST value of a repeated key; other
 * parsers keep the first or refuse. A body the proxy authorizes as `{"name": "search_orders"}` could
 * reach an upstream that reads `{"name": "delete_everything", "name": "search_orders"}` the other way,
 * so any repeated key (compared after unescaping: `"n\u0061me"` is `"name"`) refuses the body.
 */

/**
 * The first key that appears twice in one object of `text`, or undefined. `text` must already be
 * valid JSON (JSON.parse accepted it): this scanner only tracks strings and nesting.
 *
 * @example duplicateKey('{"a":1,"b":{"a":2}}') === undefined; duplicateKey('{"a":1,"\\u0061":2}') === 'a'
 */
export function duplicateKey(text: string): string | undefined {
  /** One open object's keys (and whether the next string is a key), or an array (null). */
  const stack: Array<{ keys: Set<string>; expectKey: boolean } | null> = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      for (i++; text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c /* \ */) i++;
      const top = stack.at(-1);
      if (top?.expectKey) {
        const key = JSON.parse(text.slice(start, i + 1)) as string;
        if (top.keys.has(key)) return key;
        top.keys.add(key);
        top.expectKey = false;
      }
    } else if (c === 0x7b /* { */) {
      stack.push({ keys: new Set(), expectKey: true });
    } else if (c === 0x5b /* [ */) {
      stack.push(null);
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      const top = stack.at(-1);
      if (top) top.expectKey = true;
    }
  }
  return undefined;
}
