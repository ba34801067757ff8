/**
 * The CLI's command table, loaded lazily: `baton --help` reads only the names and summaries here, and
 * running a command imports its module alone (issue #11: start-up time).
 *
 * To add a command: one entry, `name: entry('summary', () => import('./x.ts').then((m) => m.x))`.
 * Keep the summary here in step with the command's own `summary`.
 */
import type { Command } from './command.ts';

export interface CommandEntry {
  /** One line for `baton --help`. */
  summary: string;
  /** Imports the command's module (only when that command runs). */
  load(): Promise<Command>;
}

const entry = (summary: string, load: () => Promise<Command>): CommandEntry => ({ summary, load });

export const COMMANDS: Record<string, CommandEntry> = {
  dev: entry('run broker + proxy with embedded defaults and a dev OIDC issuer', () => import('./dev.ts').then((m) => m.dev)),
  serve: entry('run the broker (config from --config / BATON_CONFIG and the environment)', () => import('./serve.ts').then((m) => m.serve)),
  proxy: entry('run the Postgres enforcement proxy', () => import('./proxy.ts').then((m) => m.proxy)),
  migrate: entry('apply pending database migrations', () => import('./migrate.ts').then((m) => m.migrate)),
  keys: entry('list, rotate or retire the root signing keys', () => import('./keys.ts').then((m) => m.keys)),
  'dev-token': entry('print a dev OIDC token (baton dev only)', () => import('./dev-token.ts').then((m) => m.devToken)),
  attenuate: entry('narrow a token offline (resources, operations, TTL, delegate)', () => import('./attenuate.ts').then((m) => m.attenuate)),
  inspect: entry("show a token's lineage and effective rights", () => import('./inspect.ts').then((m) => m.inspect)),
  audit: entry('verify, tail, tree or export the audit trail', () => import('./audit.ts').then((m) => m.audit)),
  revoke: entry('revoke a token and all its descendants', () => import('./revoke.ts').then((m) => m.revoke)),
  approvals: entry('list, approve or deny statements held for approval', () => import('./approvals.ts').then((m) => m.approvals)),
  login: entry('get a Baton token (dev issuer or any OIDC token) and cache it', () => import('./login.ts').then((m) => m.login)),
  logout: entry("forget the broker's cached token", () => import('./login.ts').then((m) => m.logout)),
  exchange: entry('trade an OIDC token for a Baton token (and cache it)', () => import('./exchange.ts').then((m) => m.exchange)),
  credentials: entry('print native credentials scoped from your token (aws, postgres)', () => import('./credentials.ts').then((m) => m.credentials)),
  db: entry('psql through the proxy with your token (db connect <upstream>)', () => import('./db.ts').then((m) => m.db)),
  completion: entry('print a shell completion script (bash, zsh, fish)', () => import('./completion.ts').then((m) => m.completion)),
};

/** Loads every command (completion, tests that check each command's spec). */
export async function loadAll(): Promise<Record<string, Command>> {
  const loaded = await Promise.all(Object.entries(COMMANDS).map(async ([name, e]) => [name, await e.load()] as const));
  return Object.fromEntries(loaded);
}
