/** The CLI's one escaping module for untrusted text (src/commands/terminal-text.ts). */
import { describe, expect, it } from 'vitest';
import { terminalJson, terminalJsonText, terminalLines, terminalText } from '../../src/commands/terminal-text.ts';

const RAW = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/u;

describe('terminalText', () => {
  it('makes C0, DEL, C1 and bidi/format characters visible; a backslash is doubled so escapes are always ours', () => {
    expect(terminalText('a\n[ALLOW] x')).toBe('a\\x0a[ALLOW] x');
    expect(terminalText('\x1b[2K\r\t\x00\x7f\x9b')).toBe('\\x1b[2K\\x0d\\x09\\x00\\x7f\\x9b');
    expect(terminalText('abc\u202edef\u2066\u2069\u061c\ufeff\u200b\u2028\u2029')).toBe('abc\\u{202e}def\\u{2066}\\u{2069}\\u{61c}\\u{feff}\\u{200b}\\u{2028}\\u{2029}');
    expect(terminalText('C:\\x1b')).toBe('C:\\\\x1b');
    expect(terminalText('helper-7 — "résumé" 日本 🎉')).toBe('helper-7 — "résumé" 日本 🎉');
    for (let cp = 0; cp <= 0x3000; cp++) expect(terminalText(String.fromCodePoint(cp))).not.toMatch(RAW);
  });

  it('terminalLines keeps our own newlines but indents continuation lines', () => {
    expect(terminalLines('bad\nusage: x\x1b')).toBe('bad\n  usage: x\\x1b');
    expect(terminalLines('already \\x0a escaped')).toBe('already \\x0a escaped');
  });
});

describe('terminalJson', () => {
  it('escapes what JSON.stringify leaves raw (DEL, C1, bidi, U+2028/9) and still parses to the same value', () => {
    const value = { purpose: 'a\u202eb\x7f\x9b\u2028\n\x1b', n: 1 };
    const out = terminalJson(value, 2);
    expect(out).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]/u);
    expect(out).toContain('\\u202e');
    expect(JSON.parse(out)).toEqual(value);
    const line = JSON.stringify(value);
    expect(JSON.parse(terminalJsonText(`${line}\n`))).toEqual(value);
    expect(terminalJsonText(`${line}\n`)).not.toMatch(/[\u007f-\u009f\u202e\u2028]/u);
  });
});
