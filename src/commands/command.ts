/**
 * The shape of a CLI subcommand and the small helpers they share.
 *
 * Conventions every command follows (docs/cli.md):
 * - unknown options and leftover words are usage errors: one line on stderr
 *   (`baton attenuate: unknown option --foo`), exit 2. A command takes positional words only when it
 *   declares them.
 * - `--json` is accepted by every command: results become one JSON document on stdout, and errors one
 *   JSON line on stderr, `{"error":{"code","message","command"}}` (same exit codes).
 * - other failures: one line on stderr (`baton: …`), exit 1.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BatonError } from '../errors.ts';
import { terminalJson, terminalLines, terminalText } from './terminal-text.ts';

export type OptionsSpec = NonNullable<ParseArgsConfig['options']>;

export interface Command {
  summary: string;
  /** Returns the exit code; -1 means "keep running" (servers). */
  run(argv: string[]): Promise<number>;
  /** What completion and `--help` know about the command (commands that declare one). */
  spec?: CommandSpec;
}

export interface CommandSpec {
  /** `attenuate`, `db`, … (as typed after `baton`). */
  name: string;
  usage: string;
  options: OptionsSpec;
  /** Positional words allowed: at most `max` (default 0: any word is an error). */
  positionals?: { max: number };
  /** Completion: the first positional word's choices (`audit verify|tail|…`). */
  subcommands?: readonly string[];
  /** Words after `--` are handed on (to psql), not treated as positionals. */
  passthrough?: boolean;
}

/** Options every command accepts. */
export const GLOBAL_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' },
} as const satisfies OptionsSpec;

/** A usage error: exit 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A failure with a stable CLI code for `--json` errors (BATON_CLI_*). */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    readonly code: string,
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

function jsonRequested(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json');
}

/** Prints one error the way the command was asked to (one line, or JSON with --json). */
export function printError(name: string, err: unknown, json: boolean): number {
  const usage = err instanceof UsageError;
  const exitCode = usage ? 2 : err instanceof CliError ? err.exitCode : 1;
  const message = err instanceof Error ? err.message : String(err);
  if (json) {
    const code = usage
      ? 'BATON_CLI_USAGE'
      : err instanceof CliError || err instanceof BatonError
        ? err.code
        : err instanceof Error && err.name === 'ExchangeError'
          ? String((err as Error & { error: string }).error)
          : 'BATON_CLI_ERROR';
    process.stderr.write(`${terminalJson({ error: { code, message, command: name } })}\n`);
  } else {
    // usage errors name the command (`baton attenuate: unknown option --foo`); others read `baton: …`
    process.stderr.write(`${usage ? `baton ${terminalText(name)}` : 'baton'}: ${terminalLines(message)}\n`);
  }
  return exitCode;
}

/** Prints a usage error and exits 2 (parse errors of every command, wrapped or not). */
function usageExit(name: string, message: string, json: boolean): never {
  process.exit(printError(name, new UsageError(message), json));
}

/** parseArgs' messages, as one short line. */
function describeParseError(err: Error & { code?: string }): string {
  const option = /option '(-{1,2}[^' ]+)/i.exec(err.message)?.[1] ?? '';
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option ${option}`;
  if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    return /does not take an argument/.test(err.message) ? `option ${option} takes no value` : `option ${option} needs a value`;
  }
  return err.message.split('\n')[0]!;
}

export interface Parsed<T extends OptionsSpec> {
  values: ReturnType<typeof parseArgs<{ options: T & typeof GLOBAL_OPTIONS; strict: true; allowPositionals: true }>>['values'];
  positionals: string[];
  /** Words after `--` (commands with `passthrough`). */
  rest: string[];
}

/**
 * parseArgs, strict: unknown options, options without their value and (unless the command declares
 * them) positional words are usage errors — one line, exit 2. `--help` prints `usage` and exits 0.
 */
function parseOptions<T extends OptionsSpec>(argv: string[], spec: CommandSpec & { options: T }): Parsed<T> {
  const { name, options, usage } = spec;
  const json = jsonRequested(argv);
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...options, ...GLOBAL_OPTIONS }, strict: true, allowPositionals: true, tokens: true });
  } catch (err) {
    const message = describeParseError(err as Error);
    usageExit(name, spec.passthrough && message.startsWith('unknown option') ? `${message} (arguments for the program go after --)` : message, json);
  }
  if ((parsed.values as { help?: boolean }).help) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  const terminator = parsed.tokens.find((t) => t.kind === 'option-terminator')?.index ?? Infinity;
  const positionals: string[] = [];
  const rest: string[] = [];
  let previous: (typeof parsed.tokens)[number] | undefined;
  for (const token of parsed.tokens) {
    if (token.kind === 'positional') {
      if (spec.passthrough && token.index > terminator) rest.push(token.value);
      else if (positionals.length < (spec.positionals?.max ?? 0)) positionals.push(token.value);
      else {
        // `--ttl 5 minutes`: "minutes" is a word of its own — say where it came from
        const after = previous?.kind === 'option' && previous.value !== undefined && previous.inlineValue === false ? ` after ${previous.rawName} ${terminalText(previous.value)}` : '';
        const hint = after ? ' (quote a value that has spaces)' : '';
        usageExit(name, `unexpected argument "${terminalText(token.value)}"${after}${hint}`, json);
      }
    }
    previous = token;
  }
  return { values: parsed.values as Parsed<T>['values'], positionals, rest };
}

/**
 * A command whose options are declared once (for parsing, `--help` and completion) and whose
 * errors follow the conventions above: `run` returns the exit code or throws.
 */
export function defineCommand<T extends OptionsSpec>(
  summary: string,
  spec: CommandSpec & { options: T },
  run: (args: Parsed<T>) => Promise<number>,
): Command {
  return {
    summary,
    spec,
    async run(argv) {
      const args = parseOptions(argv, spec);
      try {
        return await run(args);
      } catch (err) {
        return printError(spec.name, err, (args.values as { json?: boolean }).json === true);
      }
    },
  };
}

/** Writes the result: `json` as one JSON document with --json, else the text (if any). */
export function output(json: boolean | undefined, value: unknown, text: string | (() => string)): void {
  if (json) process.stdout.write(`${terminalJson(value)}\n`);
  else {
    const t = typeof text === 'function' ? text() : text;
    if (t) process.stdout.write(t.endsWith('\n') ? t : `${t}\n`);
  }
}

/** Reads all of stdin (for tokens piped in). */
export async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
