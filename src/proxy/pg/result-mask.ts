/**
 * Masking on the wire: rewrites the result messages of ONE statement (or of one simple-Query string,
 * statement by statement) according to the gate's `ResultMask`s. Only statements with something to
 * mask get a masker; every other result is relayed byte for byte.
 *
 * - RowDescription: a masked column is announced as `text` (its masked form is text whatever the
 *   column's type, and a client must not parse `****` as a number or JSON).
 * - DataRow: text-format values are replaced by the method's output or the detectors' masked text;
 *   a BINARY-format value of a masked column (or a binary value a detector hits) is sent as NULL —
 *   never the raw bytes.
 * - COPY … TO STDOUT in text format: each row's fields are unescaped, masked and escaped again.
 *   Binary and CSV COPY of masked columns are refused by the gate; should one arrive anyway the
 *   masker throws and the relay ends the session (fail closed).
 */
import type { ColumnMask, ResultMask } from './gate.ts';
import { Backend, ProtocolError } from './protocol.ts';

const TEXT_OID = 25;
const utf8 = new TextDecoder('utf-8', { fatal: false });

export class ResultMasker {
  /** Values masked so far (for the audit outcome). */
  masked = 0;
  private index = 0;
  /** Per-column format codes announced by the last RowDescription (simple Query, binary cursors). */
  private described: number[] | undefined;
  private copyText = false;

  /**
   * @param masks one entry per statement (a simple Query string may hold several)
   * @param bindFormats the Bind message's result-column format codes (extended protocol); absent = text
   */
  constructor(
    private readonly masks: readonly (ResultMask | undefined)[],
    private readonly bindFormats?: readonly number[],
  ) {}

  /** A replacement for the message, or undefined to relay it unchanged. */
  rewrite(type: number, buf: Buffer, start: number, end: number): Buffer | undefined {
    const mask = this.masks[this.index];
    switch (type) {
      case Backend.RowDescription:
        return this.rowDescription(mask, buf, start, end);
      case Backend.DataRow:
        return mask ? this.dataRow(mask, buf, start, end) : undefined;
      case Backend.CopyOutResponse:
        this.copyText = buf[start + 5] === 0;
        if (mask && !this.copyText) throw new ProtocolError('binary COPY of masked columns');
        return undefined;
      case Backend.CopyData:
        return mask ? this.copyRow(mask, buf, start, end) : undefined;
      case Backend.CommandComplete:
      case Backend.EmptyQueryResponse:
        this.index++;
        this.described = undefined;
        return undefined;
      default:
        return undefined;
    }
  }

  private actions(mask: ResultMask, width: number): readonly ColumnMask[] {
    const cols = mask.columns;
    if (cols && cols.length === width) return cols;
    return new Array<ColumnMask>(width).fill(mask.every);
  }

  private formatOf(i: number): number {
    const f = this.bindFormats;
    if (f && f.length > 0) return f.length === 1 ? f[0]! : (f[i] ?? 0);
    return this.described?.[i] ?? 0;
  }

  private rowDescription(mask: ResultMask | undefined, buf: Buffer, start: number, end: number): Buffer | undefined {
    const width = buf.readInt16BE(start + 5);
    const formats: number[] = [];
    const actions = mask ? this.actions(mask, width) : [];
    let pos = start + 7;
    const patches: number[] = [];
    for (let i = 0; i < width; i++) {
      const nul = buf.indexOf(0, pos);
      if (nul < 0 || nul + 19 > end) throw new ProtocolError('malformed RowDescription');
      const field = nul + 1; // tableOID(4) attnum(2) typeOID(4) typlen(2) typmod(4) format(2)
      formats.push(buf.readInt16BE(field + 16));
      if (actions[i]?.kind === 'method') patches.push(field);
      pos = field + 18;
    }
    this.described = formats;
    if (patches.length === 0) return undefined;
    const out = Buffer.from(buf.subarray(start, end));
    for (const field of patches) {
      const at = field - start;
      out.writeInt32BE(TEXT_OID, at + 6);
      out.writeInt16BE(-1, at + 10);
      out.writeInt32BE(-1, at + 12);
    }
    return out;
  }

  private dataRow(mask: ResultMask, buf: Buffer, start: number, end: number): Buffer | undefined {
    const width = buf.readInt16BE(start + 5);
    const actions = this.actions(mask, width);
    let pos = start + 7;
    let parts: Buffer[] | undefined;
    let copiedTo = start;
    for (let i = 0; i < width; i++) {
      if (pos + 4 > end) throw new ProtocolError('malformed DataRow');
      const len = buf.readInt32BE(pos);
      const valueStart = pos + 4;
      const valueEnd = len < 0 ? valueStart : valueStart + len;
      if (valueEnd > end) throw new ProtocolError('malformed DataRow');
      const action = actions[i];
      if (action !== undefined && len >= 0) {
        const replacement = this.value(action, buf, valueStart, valueEnd, this.formatOf(i) === 1);
        if (replacement !== undefined) {
          parts ??= [];
          parts.push(buf.subarray(copiedTo, pos), replacement);
          copiedTo = valueEnd;
          this.masked++;
        }
      }
      pos = valueEnd;
    }
    if (!parts) return undefined;
    parts.push(buf.subarray(copiedTo, end));
    const out = Buffer.concat(parts);
    out.writeInt32BE(out.length - 1, 1); // the length field excludes the type byte
    return out;
  }

  /** The length-prefixed replacement of one value, or undefined to keep it. */
  private value(action: NonNullable<ColumnMask>, buf: Buffer, start: number, end: number, binary: boolean): Buffer | undefined {
    const text = utf8.decode(buf.subarray(start, end));
    let masked: string | null | undefined;
    if (action.kind === 'method') masked = binary ? null : action.apply(text);
    else {
      const hit = action.scan(text);
      masked = hit === undefined ? undefined : binary ? null : hit;
    }
    if (masked === undefined) return undefined;
    if (masked === null) {
      const b = Buffer.alloc(4);
      b.writeInt32BE(-1, 0);
      return b;
    }
    const bytes = Buffer.from(masked, 'utf8');
    const b = Buffer.allocUnsafe(4 + bytes.length);
    b.writeInt32BE(bytes.length, 0);
    bytes.copy(b, 4);
    return b;
  }

  /** One row of `COPY … TO STDOUT` in text format (tab-separated, `\N` = NULL, backslash escapes). */
  private copyRow(mask: ResultMask, buf: Buffer, start: number, end: number): Buffer | undefined {
    const line = utf8.decode(buf.subarray(start + 5, end));
    const newline = line.endsWith('\n');
    const fields = (newline ? line.slice(0, -1) : line).split('\t');
    const actions = this.actions(mask, fields.length);
    let changed = false;
    for (let i = 0; i < fields.length; i++) {
      const action = actions[i];
      if (action === undefined || fields[i] === '\\N') continue;
      const value = copyUnescape(fields[i]!);
      const masked = action.kind === 'method' ? action.apply(value) : action.scan(value);
      if (masked === undefined) continue;
      fields[i] = masked === null ? '\\N' : copyEscape(masked);
      changed = true;
      this.masked++;
    }
    if (!changed) return undefined;
    const body = Buffer.from(fields.join('\t') + (newline ? '\n' : ''), 'utf8');
    const out = Buffer.allocUnsafe(5 + body.length);
    out[0] = Backend.CopyData;
    out.writeInt32BE(4 + body.length, 1);
    body.copy(out, 5);
    return out;
  }
}

const UNESCAPE: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

/** COPY text format → value (PostgreSQL's CopyReadAttributesText escapes). */
function copyUnescape(field: string): string {
  if (!field.includes('\\')) return field;
  return field.replace(/\\(x[0-9A-Fa-f]{1,2}|[0-7]{1,3}|.)/g, (_, e: string) => {
    if (e[0] === 'x') return String.fromCharCode(parseInt(e.slice(1), 16));
    if (/^[0-7]/.test(e)) return String.fromCharCode(parseInt(e, 8));
    return UNESCAPE[e] ?? e;
  });
}

function copyEscape(value: string): string {
  return value.replace(/[\\\n\r\t]/g, (c) => (c === '\\' ? '\\\\' : c === '\n' ? '\\n' : c === '\r' ? '\\r' : '\\t'));
}

/**
 * The result-format codes of a Bind message body (after portal and statement names), or undefined
 * when malformed (the upstream rejects it anyway).
 */
export function bindResultFormats(buf: Buffer, pos: number, end: number): number[] | undefined {
  if (pos + 2 > end) return undefined;
  const nParamFormats = buf.readInt16BE(pos);
  pos += 2 + 2 * nParamFormats;
  if (pos + 2 > end) return undefined;
  const nParams = buf.readInt16BE(pos);
  pos += 2;
  for (let i = 0; i < nParams; i++) {
    if (pos + 4 > end) return undefined;
    const len = buf.readInt32BE(pos);
    pos += 4 + Math.max(0, len);
  }
  if (pos + 2 > end) return undefined;
  const n = buf.readInt16BE(pos);
  pos += 2;
  const formats: number[] = [];
  for (let i = 0; i < n && pos + 2 <= end; i++, pos += 2) formats.push(buf.readInt16BE(pos));
  return formats;
}
