/** Backend messages built by hand, for tests and benchmarks of code that reads them. */

/** A DataRow message of text values (null = SQL NULL). */
export function dataRow(values: readonly (string | null)[]): Buffer {
  const parts = values.map((v) => {
    if (v === null) return Buffer.from([0xff, 0xff, 0xff, 0xff]);
    const b = Buffer.from(v, 'utf8');
    const len = Buffer.alloc(4);
    len.writeInt32BE(b.length);
    return Buffer.concat([len, b]);
  });
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(7);
  head[0] = 0x44;
  head.writeInt32BE(6 + body.length, 1);
  head.writeInt16BE(values.length, 5);
  return Buffer.concat([head, body]);
}
