/**
 * Stopping a server process on SIGINT (Ctrl-C) or SIGTERM: one line on stderr, everything closed in
 * order, exit 0.
 *
 * - While closing, errors that stores raise as they go away (a connection ended by a database that
 *   is stopping too, a socket reset) are expected: they are counted, not printed as stack traces.
 *   `close()` itself failing is not: one line, exit 1.
 * - A second signal while closing exits at once (1), as does a close that takes longer than
 *   `timeoutMs` (default 10 s).
 *
 * @example
 * const running = await startDev(config);
 * onShutdown(() => running.close());
 */
export interface ShutdownOptions {
  /** Give up and exit 1 after this long. Default 10 000 ms. */
  timeoutMs?: number;
  /** Where the lines go; default stderr. */
  write?: (line: string) => void;
  /** Default process.exit. */
  exit?: (code: number) => void;
  /** Default SIGINT and SIGTERM. */
  signals?: readonly NodeJS.Signals[];
}

export function onShutdown(close: () => Promise<void>, opts: ShutdownOptions = {}): () => void {
  const write = opts.write ?? ((line: string) => void process.stderr.write(line));
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const signals = opts.signals ?? ['SIGINT', 'SIGTERM'];
  let closing = false;
  let suppressed = 0;
  const swallow = () => void suppressed++;

  const stop = (signal: NodeJS.Signals) => {
    if (closing) {
      write(`baton: ${signal} received again, exiting without finishing shutdown\n`);
      exit(1);
      return;
    }
    closing = true;
    write(`baton: ${signal} received, shutting down\n`);
    // from here on a store that errors while going away is not a crash
    process.on('uncaughtException', swallow);
    process.on('unhandledRejection', swallow);
    const force = setTimeout(() => {
      write(`baton: shutdown did not finish within ${timeoutMs} ms, exiting\n`);
      exit(1);
    }, timeoutMs);
    force.unref();
    close().then(
      () => {
        clearTimeout(force);
        exit(0);
      },
      (e: unknown) => {
        clearTimeout(force);
        write(`baton: shutdown error: ${oneLine(e)}\n`);
        exit(1);
      },
    );
  };
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const handlers = signals.map((s) => [s, () => stop(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  return () => {
    for (const [s, h] of handlers) process.off(s, h);
    process.off('uncaughtException', swallow);
    process.off('unhandledRejection', swallow);
    void suppressed;
  };
}

function oneLine(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.split('\n')[0]!.slice(0, 500);
}
