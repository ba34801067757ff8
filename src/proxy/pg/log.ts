/**
 * The logging surface the proxy needs; pino/fastify loggers fit as they are. Fields never carry
 * tokens, passwords or SQL text.
 *
 * @example
 * createPgProxy({ gate, logger: fastify.log });
 */
export interface ProxyLogger {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

/** Discards everything (the default). */
export const silentLogger: ProxyLogger = Object.freeze({
  info() {},
  warn() {},
  error() {},
});
