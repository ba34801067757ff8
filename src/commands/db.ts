/**
 * `baton db connect <upstream>` — psql through the Baton proxy with the token filled in. The token
 * goes to psql in PGPASSWORD (its environment), never on a command line `ps` shows.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { UPSTREAM_NAME } from '../config/names.ts';
import { brokerUrl } from './broker-client.ts';
import { CliError, defineCommand, UsageError } from './command.ts';
import { tokenFor } from './token-cache.ts';
import { terminalText as t } from './terminal-text.ts';

const USAGE = `usage: baton db connect <upstream> [--host H] [--port N] [--user U] [--broker URL] [-- psql args...]
  Starts psql against the Baton proxy (default 127.0.0.1:6432) with dbname=<upstream> and the token in
  PGPASSWORD. The token: BATON_TOKEN, else the one \`baton login\` cached for the broker (--broker,
  BATON_BROKER, default http://127.0.0.1:8080); stdin stays psql's. Words after -- go to psql
  (e.g. -- -c 'SELECT count(*) FROM orders'). Exits with psql's exit code; psql must be on PATH
  (or in BATON_PSQL). --json affects only baton's own errors.`;

export const db = defineCommand(
  'psql through the proxy with your token (db connect <upstream>)',
  {
    name: 'db',
    usage: USAGE,
    options: { host: { type: 'string' }, port: { type: 'string' }, user: { type: 'string' }, broker: { type: 'string' } },
    positionals: { max: 2 },
    subcommands: ['connect'],
    passthrough: true,
  },
  async ({ values, positionals, rest }) => {
    const [action, upstream] = positionals;
    if (action !== 'connect') throw new UsageError(action === undefined ? 'say connect <upstream>' : `unknown subcommand "${t(action)}" (say connect <upstream>)`);
    if (!upstream) throw new UsageError('connect needs an upstream name (e.g. appdb)');
    // a plain name, never a connection string psql could read as one (where the token would go)
    if (!UPSTREAM_NAME.test(upstream)) throw new UsageError(`"${t(upstream)}" is not an upstream name (letters, digits, _ and -)`);
    const port = values.port ?? '6432';
    if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) throw new UsageError(`--port "${t(port)}" is not a port number`);
    const { token } = await tokenFor({ broker: brokerUrl(values.broker), stdin: false, cache: true });
    const psql = process.env.BATON_PSQL || 'psql';
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PGHOST: values.host ?? '127.0.0.1',
      PGPORT: port,
      PGDATABASE: upstream,
      PGUSER: values.user ?? 'agent',
      PGPASSWORD: token,
      PGAPPNAME: process.env.PGAPPNAME ?? 'baton db connect',
    };
    delete env.BATON_TOKEN; // psql and whatever it runs (\!) need only PGPASSWORD
    const child = spawn(psql, rest, { stdio: 'inherit', env });
    // Ctrl-C reaches psql too (same process group); it cancels the query and carries on, so must we
    const ignore = () => {};
    process.on('SIGINT', ignore);
    process.on('SIGQUIT', ignore);
    try {
      return await new Promise<number>((resolve, reject) => {
        child.once('error', (err: NodeJS.ErrnoException) => {
          reject(
            err.code === 'ENOENT'
              ? new CliError('BATON_CLI_PSQL_MISSING', `${t(psql)} not found on PATH: install the PostgreSQL client (e.g. apt install postgresql-client) or set BATON_PSQL`, 127)
              : new CliError('BATON_CLI_PSQL_FAILED', `cannot start ${t(psql)}: ${t(err.message)}`),
          );
        });
        child.once('exit', (code, signal) => {
          resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0));
        });
      });
    } finally {
      process.off('SIGINT', ignore);
      process.off('SIGQUIT', ignore);
    }
  },
);
