/** `baton dev`'s readable log lines. */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { prettyLine, prettyLogStream } from '../../src/dev/pretty-log.ts';

describe('dev log', () => {
  it('prints time, level, message and the fields that matter, one line per entry', () => {
    const time = Date.UTC(2026, 0, 2, 3, 4, 5);
    expect(prettyLine(JSON.stringify({ level: 30, time, pid: 1, hostname: 'h', msg: 'session started', event: 'pg.session.start', remote: '127.0.0.1', tls: true }))).toBe(
      '03:04:05 INFO  session started  event=pg.session.start remote=127.0.0.1 tls=true',
    );
    expect(prettyLine(JSON.stringify({ level: 40, time, msg: 'not ready', reasons: ['audit: down here'] }))).toBe('03:04:05 WARN  not ready  reasons=["audit: down here"]');
    expect(prettyLine(JSON.stringify({ level: 30, time, msg: 'request completed', reqId: 'req-1', res: { statusCode: 404 }, responseTime: 1.234 }))).toBe(
      '03:04:05 INFO  request completed  reqId=req-1 status=404 1.2ms',
    );
    expect(prettyLine('not json')).toBe('not json');
  });

  it('reassembles lines split across writes', async () => {
    let out = '';
    const sink = new Writable({ write: (c: Buffer, _e, done) => void ((out += c.toString()), done()) });
    const stream = prettyLogStream(sink);
    const line = JSON.stringify({ level: 50, time: 0, msg: 'boom' });
    stream.write(line.slice(0, 10));
    stream.write(`${line.slice(10)}\n${line}`);
    await new Promise<void>((r) => stream.end(r));
    expect(out).toBe('00:00:00 ERROR boom\n00:00:00 ERROR boom\n');
  });
});
