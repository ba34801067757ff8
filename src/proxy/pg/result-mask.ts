/**
 * Masking on the wire: rewrites the result messages of ONE statement (or of one simple-Query string,
 * statement by statement) according to the gate's `ResultMask`s. Only statements with something to
 * mask get a masker; every other result is relayed byte for byte.
 *
 * - RowDescription: a masked column is announced as `text` (its masked form is text whatever the
 *   column's type, and a client must not parse `****` as a number or JSON); so is a json/jsonb
 *   column the detectors scan (a masked number inside it would not parse).
 * - DataRow: text-format values are replaced by the method's output or the detectors' masked text;
 *   a BINARY-format value of a masked column (or a binary value a detector hits) is sent as NULL —
 *   never the raw bytes.
 * - COPY … TO STDOUT in text format: each row's fields are unescaped, masked and escaped again.
 *   Binary and CSV COPY of masked columns are refused by the gate; should one arrive anyway the
 *   masker throws and the relay ends the session (fail closed).
 */
import type { ByteMask, ColumnMask, ResultMask } from './gate.ts';
import { Backend, ProtocolError } from './protocol.ts';

const TEXT_OID = 25;
/** json and jsonb: a detector's replacement inside a JSON number would not parse as JSON any more. */
const JSON_OIDS = new Set([114, 3802]);

const readInt32 = (b: Buffer, p: number): number => (b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!;

/** `src.copy` without its per-call overhead for the short runs of a row (values are mostly small). */
function copyBytes(src: Buffer, start: number, end: number, dst: Buffer, at: number): number {
  const n = end - start;
  if (n > 64) return src.copy(dst, at, start, end);
  for (let i = 0; i < n; i++) dst[at + i] = src[start + i]!;
  return n;
}

export class ResultMasker {
  /** Values masked so far (for the audit outcome). */
  masked = 0;
  private index = 0;
  /** Per-column format codes announced by the last RowDescription (simple Query, binary cursors). */
  private described: number[] | undefined;
  /** Column type OIDs announced by the last RowDescription (json/jsonb values are masked leaf by leaf). */
  private types: number[] | undefined;
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
        if (end - start < 6) throw new ProtocolError('malformed CopyOutResponse');
        this.copyText = buf[start + 5] === 0;
        if (mask && !this.copyText) throw new ProtocolError('binary COPY of masked columns');
        return undefined;
      case Backend.CopyData:
        return mask ? this.copyRow(mask, buf, start, end) : undefined;
      case Backend.CommandComplete:
      case Backend.EmptyQueryResponse:
        this.index++;
        this.described = undefined;
        this.types = undefined;
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
    if (end - start < 7) throw new ProtocolError('malformed RowDescription');
    const width = buf.readInt16BE(start + 5);
    if (width < 0) throw new ProtocolError('malformed RowDescription');
    const formats: number[] = [];
    const types: number[] = [];
    const actions = mask ? this.actions(mask, width) : [];
    let pos = start + 7;
    const patches: number[] = [];
    for (let i = 0; i < width; i++) {
      const nul = buf.indexOf(0, pos);
      if (nul < 0 || nul + 19 > end) throw new ProtocolError('malformed RowDescription');
      const field = nul + 1; // tableOID(4) attnum(2) typeOID(4) typlen(2) typmod(4) format(2)
      formats.push(buf.readInt16BE(field + 16));
      types.push(buf.readInt32BE(field + 6));
      const action = actions[i];
      if (action?.kind === 'method' || (action?.kind === 'detect' && JSON_OIDS.has(buf.readInt32BE(field + 6)))) patches.push(field);
      pos = field + 18;
    }
    this.described = formats;
    this.types = types;
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
    if (end - start < 7) throw new ProtocolError('malformed DataRow');
    const width = buf.readInt16BE(start + 5);
    if (width < 0) throw new ProtocolError('malformed DataRow');
    const actions = this.actions(mask, width);
    let pos = start + 7;
    // First pass: what each masked value becomes, and the new message's size. A value is rewritten
    // from its bytes (`bytes`: most values, no decoding) or as a string; nothing is copied yet.
    // `edits` holds, per rewritten value: where its length field is, where it ends, the column.
    const edits = this.edits;
    let count = 0;
    let delta = 0;
    for (let i = 0; i < width; i++) {
      if (pos + 4 > end) throw new ProtocolError('malformed DataRow');
      const len = readInt32(buf, pos);
      const valueEnd = len < 0 ? pos + 4 : pos + 4 + len;
      if (valueEnd > end) throw new ProtocolError('malformed DataRow');
      const action = actions[i];
      if (action !== undefined && len >= 0) {
        const binary = this.formatOf(i) === 1;
        const json = JSON_OIDS.has(this.types?.[i] ?? 0) && !(action.kind === 'method' && action.whole);
        let n = action.kind === 'method' && action.bytes && !binary && !json ? action.bytes.length(buf, pos + 4, valueEnd) : -2;
        let text: string | null | undefined;
        if (n === -2) {
          text = json && action.kind === 'method' && !binary ? maskJsonLeaves(buf.toString('utf8', pos + 4, valueEnd), action.apply) : this.value(action, buf, pos + 4, valueEnd, binary);
          n = text === undefined ? -3 : text === null ? -1 : Buffer.byteLength(text, 'utf8');
        }
        if (n !== -3) {
          edits[count] = { at: pos, end: valueEnd, column: i, bytes: n, text };
          count++;
          delta += Math.max(0, n) - len;
          this.masked++;
        }
      }
      pos = valueEnd;
    }
    if (count === 0) return undefined;
    // second pass: one buffer; untouched runs between rewritten values are copied whole
    const out = Buffer.allocUnsafe(end - start + delta);
    let o = 0;
    let from = start;
    for (let k = 0; k < count; k++) {
      const e = edits[k]!;
      o += copyBytes(buf, from, e.at, out, o);
      if (e.bytes === -1) {
        o = out.writeInt32BE(-1, o);
      } else if (e.text !== undefined && e.text !== null) {
        out.writeInt32BE(e.bytes, o);
        out.write(e.text, o + 4, e.bytes, 'utf8');
        o += 4 + e.bytes;
      } else {
        out.writeInt32BE(e.bytes, o);
        (actions[e.column] as { bytes: ByteMask }).bytes.write(buf, e.at + 4, e.end, out, o + 4);
        o += 4 + e.bytes;
      }
      from = e.end;
    }
    o += copyBytes(buf, from, end, out, o);
    out.writeInt32BE(o - 1, 1); // the length field excludes the type byte
    return out;
  }

  /** Scratch list of one row's rewrites (reused row after row). */
  private readonly edits: { at: number; end: number; column: number; bytes: number; text: string | null | undefined }[] = [];

  /** The replacement of one value (null = SQL NULL), or undefined to keep it. */
  private value(action: NonNullable<ColumnMask>, buf: Buffer, start: number, end: number, binary: boolean): string | null | undefined {
    if (action.kind === 'method') return binary ? null : action.apply(buf.toString('utf8', start, end));
    const hit = action.scan(buf.toString('utf8', start, end));
    return hit === undefined ? undefined : binary ? null : hit;
  }

  /** One row of `COPY … TO STDOUT` in text format (tab-separated, `\N` = NULL, backslash escapes). */
  private copyRow(mask: ResultMask, buf: Buffer, start: number, end: number): Buffer | undefined {
    const line = buf.toString('utf8', start + 5, end);
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
 * A masked json/jsonb value: the method applied to every string, number and boolean leaf, the
 * structure kept (keys are not values; nulls stay). A masked number or boolean becomes a string.
 * Not JSON → the whole text is masked.
 */
function maskJsonLeaves(text: string, apply: (value: string) => string | null): string | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return apply(text);
  }
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return apply(v);
    if (typeof v === 'number' || typeof v === 'boolean') return apply(String(v));
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v; // null
  };
  return JSON.stringify(walk(parsed));
}

/** Text fields of an ErrorResponse/NoticeResponse that may carry values (message, detail, hint, context, internal query). */
const VALUE_FIELDS = new Set([0x4d /* M */, 0x44 /* D */, 0x48 /* H */, 0x57 /* W */, 0x71 /* q */]);

/**
 * An ErrorResponse/NoticeResponse with `scrub` applied to every field that may carry a value, or
 * undefined when nothing changed. Other fields (severity, SQLSTATE, position, …) are kept.
 */
export function scrubErrorMessage(buf: Buffer, start: number, end: number, scrub: (text: string) => string): Buffer | undefined {
  const parts: Buffer[] = [buf.subarray(start, start + 5)];
  let changed = false;
  let i = start + 5;
  while (i < end && buf[i] !== 0) {
    const field = buf[i]!;
    const nul = buf.indexOf(0, i + 1);
    if (nul < 0 || nul >= end) throw new ProtocolError('malformed error message');
    if (VALUE_FIELDS.has(field)) {
      const text = buf.toString('utf8', i + 1, nul);
      const clean = scrub(text);
      if (clean !== text) {
        changed = true;
        parts.push(Buffer.from([field]), Buffer.from(clean.replace(/\0/g, ''), 'utf8'), Buffer.from([0]));
        i = nul + 1;
        continue;
      }
    }
    parts.push(buf.subarray(i, nul + 1));
    i = nul + 1;
  }
  if (!changed) return undefined;
  parts.push(Buffer.from([0]));
  const out = Buffer.concat(parts);
  out.writeInt32BE(out.length - 1, 1);
  return out;
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
