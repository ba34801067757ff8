/**
 * The `baton` command. Each subcommand lives in src/commands/; this file only dispatches, importing
 * the one command it runs (src/commands/index.ts is a lazy table).
 * Errors: non-zero exit and one clear line on stderr.
 */
import { COMMANDS } from './commands/index.ts';
import { terminalLines } from './commands/terminal-text.ts';

const USAGE = `usage: baton <command> [options]

commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(12)} ${c.summary}`)
  .join('\n')}

Run \`baton <command> --help\` for a command's options.`;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return name ? 0 : 2;
  }
  const entry = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!entry) {
    process.stderr.write(`baton: unknown command "${terminalLines(name)}"\n${USAGE}\n`);
    return 2;
  }
  const command = await entry.load();
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined && code !== -1) process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`baton: ${terminalLines(err instanceof Error ? err.message : String(err))}\n`);
    process.exitCode = 1;
  },
);
