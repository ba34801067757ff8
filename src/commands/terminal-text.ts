/**
 * Untrusted text never reaches a terminal raw. Delegate names, purposes, resources, reasons and ids
 * come from tokens anyone can mint offline and from audit entries they caused; printed raw, a newline
 * forges an output line ("[ALLOW] …" under a DENY), ESC sequences rewrite or erase what is on screen,
 * and bidi controls reorder it. Every CLI output built from such text goes through this module:
 *
 * - `terminalText`: C0 controls (newline and tab included), DEL, C1 controls, and invisible
 *   format / bidi characters become visible escapes, `\xNN` (≤ U+00FF) or `\u{NNNN}`; a backslash
 *   becomes `\\`, so an escape in the output is always ours.
 * - `terminalJson` / `terminalJsonText`: JSON.stringify escapes C0 already, but not DEL, C1, bidi or
 *   U+2028/2029; those become `\uNNNN` inside the JSON strings (still valid JSON, same value).
 * - `terminalLines`: for our own multi-line messages (errors): escapes like `terminalText` but keeps
 *   newlines, indenting every continuation line so no line can pose as one of its own, and leaves
 *   backslashes alone (a message may quote text that was escaped already).
 */

/** Characters a terminal would act on or that are invisible: C0, DEL, C1, and format/bidi controls. */
const CONTROL = '\\u0000-\\u001f\\u007f-\\u009f';
const FORMAT = '\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u206f\\ufeff\\ufff9-\\ufffb';
const UNSAFE = new RegExp(`[${CONTROL}${FORMAT}\\\\]`, 'gu');
// (backslashes are left alone: messages may quote text a command escaped already)
const UNSAFE_KEEP_NEWLINE = new RegExp(`[\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f${FORMAT}]`, 'gu');
/** What can still be raw in JSON.stringify output (C0 is escaped by it; \\ and " too). */
const JSON_UNSAFE = new RegExp(`[\\u007f-\\u009f${FORMAT}]`, 'gu');
/** In JSON text from elsewhere (the broker's export): C0 except the line feed that ends each record. */
const JSON_TEXT_UNSAFE = new RegExp(`[\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f${FORMAT}]`, 'gu');

function visible(ch: string): string {
  if (ch === '\\') return '\\\\';
  const cp = ch.codePointAt(0)!;
  return cp <= 0xff ? `\\x${cp.toString(16).padStart(2, '0')}` : `\\u{${cp.toString(16)}}`;
}

const jsonEscape = (ch: string) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`;

/**
 * One line of untrusted text, safe to print.
 * @example terminalText('a\n[ALLOW] x\u202e') === 'a\\x0a[ALLOW] x\\u{202e}'
 */
export function terminalText(value: unknown): string {
  return String(value ?? '').replace(UNSAFE, visible);
}

/** A message of ours that may span lines (errors): escaped, continuation lines indented. */
export function terminalLines(value: unknown): string {
  return String(value ?? '')
    .replace(UNSAFE_KEEP_NEWLINE, visible)
    .split('\n')
    .join('\n  ');
}

/** JSON.stringify whose output is safe on a terminal (and still parses to the same value). */
export function terminalJson(value: unknown, space?: number): string {
  return JSON.stringify(value, null, space).replace(JSON_UNSAFE, jsonEscape);
}

/** JSON (lines) received from elsewhere: the same escapes, applied to the text as it is. */
export function terminalJsonText(text: string): string {
  return text.replace(JSON_TEXT_UNSAFE, jsonEscape);
}
