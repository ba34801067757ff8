import { ProtocolError, SqlState } from './protocol.ts';

/**
 * Splits a byte stream of typed messages (1 type byte + int32 length) into whole messages without
 * copying in the common case: a message that lies inside one received chunk is returned as offsets
 * into that chunk. Only a message split across chunks is copied, once, when its last byte arrives
 * (chunks are collected in a list meanwhile, so a 64 MiB CopyData costs one concat, not one per chunk).
 *
 * No object is allocated per message: after `next()` returns a type, read `buf`, `start`, `end`.
 *
 * @example
 * const f = new MessageFramer(64 * 1024 * 1024);
 * f.push(chunk);
 * for (let t = f.next(); t >= 0; t = f.next()) handle(t, f.buf, f.start, f.end);
 */
export class MessageFramer {
  /** Buffer holding the last message returned by `next()`. */
  buf: Buffer = Buffer.alloc(0);
  /** Offset of the type byte of the last message returned. */
  start = 0;
  /** Offset one past its last byte. */
  end = 0;

  private pos = 0;
  private readonly pending: Buffer[] = [];
  private pendingBytes = 0;

  /** @param maxMessageBytes largest accepted message (length field + 1); larger → ProtocolError. */
  constructor(private readonly maxMessageBytes: number) {}

  /** Bytes received but not yet returned as messages. */
  get buffered(): number {
    return this.buf.length - this.pos + this.pendingBytes;
  }

  /** Adds a received chunk. */
  push(chunk: Buffer): void {
    if (this.pos >= this.buf.length && this.pendingBytes === 0) {
      this.buf = chunk;
      this.pos = 0;
    } else {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
    }
  }

  /**
   * The type byte of the next whole message (then `buf/start/end` describe it), or -1 when more bytes
   * are needed. Throws ProtocolError for a length that is impossible or above the cap — checked as
   * soon as the header is in, before waiting for the body.
   */
  next(): number {
    if (this.buf.length - this.pos < 5 && !this.gather(5)) return -1;
    const type = this.buf[this.pos]!;
    const len = this.buf.readInt32BE(this.pos + 1);
    if (len < 4) throw new ProtocolError('invalid message length');
    if (len + 1 > this.maxMessageBytes) {
      throw new ProtocolError(`message too large (limit ${this.maxMessageBytes} bytes)`, SqlState.ProtocolViolation);
    }
    const total = len + 1;
    if (this.buf.length - this.pos < total && !this.gather(total)) return -1;
    this.start = this.pos;
    this.end = this.pos + total;
    this.pos = this.end;
    return type;
  }

  /** Makes `need` contiguous bytes available at `pos` if enough were received; copies once. */
  private gather(need: number): boolean {
    if (this.buf.length - this.pos + this.pendingBytes < need) return false;
    const rest = this.buf.subarray(this.pos);
    this.buf = Buffer.concat([rest, ...this.pending], rest.length + this.pendingBytes);
    this.pos = 0;
    this.pending.length = 0;
    this.pendingBytes = 0;
    return true;
  }
}
