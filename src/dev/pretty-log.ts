/**
 * `baton dev`'s log, for a person at a terminal: one short line per entry instead of pino's JSON.
 *
 *   16:29:01 INFO  session started  event=pg.session.start remote=127.0.0.1 tls=true
 *   16:29:03 WARN  not ready  reasons=["audit: …"]
 *
 * Only `baton dev` uses it; servers keep JSON (machines read those logs). Fields are printed as the
 * logger got them (the loggers never carry tokens, passwords or SQL text; LOG_REDACT still applies).
 */
import { Writable } from 'node:stream';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL' };
/** Every entry has these; they say nothing to a person reading along. */
const OMIT = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'v']);

/** One JSON log line → one readable line (not JSON: returned as it was). */
export function prettyLine(line: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  if (!entry || typeof entry !== 'object' || Array.isArray(entry)) return line;
  const time = typeof entry.time === 'number' ? new Date(entry.time).toISOString().slice(11, 19) : '--:--:--';
  const level = LEVELS[entry.level as number] ?? String(entry.level ?? '').padEnd(5);
  const fields: string[] = [];
  for (const [key, value] of Object.entries(entry)) {
    if (OMIT.has(key) || value === undefined) continue;
    if (key === 'req' && value && typeof value === 'object') {
      const r = value as { method?: string; url?: string };
      fields.push(`${r.method ?? ''} ${r.url ?? ''}`.trim());
    } else if (key === 'res' && value && typeof value === 'object') {
      fields.push(`status=${(value as { statusCode?: number }).statusCode}`);
    } else if (key === 'responseTime' && typeof value === 'number') {
      fields.push(`${value.toFixed(1)}ms`);
    } else {
      fields.push(`${key}=${typeof value === 'string' && !/[\s"]/.test(value) ? value : JSON.stringify(value)}`);
    }
  }
  return `${time} ${level} ${String(entry.msg ?? '')}${fields.length ? `  ${fields.join(' ')}` : ''}`;
}

/** A writable for pino/fastify (`logger: { stream }`) that prints readable lines to `out`. */
export function prettyLogStream(out: NodeJS.WritableStream = process.stdout): Writable {
  let rest = '';
  return new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      const lines = (rest + chunk.toString()).split('\n');
      rest = lines.pop() ?? '';
      const text = lines.filter((l) => l !== '').map((l) => `${prettyLine(l)}\n`).join('');
      if (text) out.write(text);
      done();
    },
    final(done) {
      if (rest) out.write(`${prettyLine(rest)}\n`);
      done();
    },
  });
}
