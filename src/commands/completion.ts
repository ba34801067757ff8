/**
 * `baton completion bash|zsh|fish` — a completion script generated from the command table: every
 * command, its subcommands (audit verify…, keys rotate…, db connect) and its options. Commands
 * declare their options once (`spec` on the Command); a command without a spec completes the global
 * options only.
 */
import { defineCommand, GLOBAL_OPTIONS, output, UsageError, type Command, type OptionsSpec } from './command.ts';
import { terminalText as t } from './terminal-text.ts';

const USAGE = `usage: baton completion bash|zsh|fish [--json]
  Prints a completion script for the shell:
    bash  eval "$(baton completion bash)"            (or save it in ~/.local/share/bash-completion/completions/baton)
    zsh   source <(baton completion zsh)             (or save it as _baton in a directory on $fpath)
    fish  baton completion fish > ~/.config/fish/completions/baton.fish
  --json prints the command table the scripts are made from.`;

const SHELLS = ['bash', 'zsh', 'fish'] as const;

interface OptionInfo {
  name: string;
  short?: string;
  /** Takes a value (`--ttl 5m`); false for switches. */
  value: boolean;
  multiple: boolean;
}

export interface CommandInfo {
  name: string;
  summary: string;
  subcommands: string[];
  options: OptionInfo[];
}

/** Options whose values are paths: completed with file names. */
const PATH_OPTIONS = new Set(['keys', 'config', 'data-dir']);

function optionsOf(spec: OptionsSpec): OptionInfo[] {
  const all: OptionsSpec = { ...spec, ...GLOBAL_OPTIONS };
  return Object.entries(all).map(([name, o]) => ({
    name,
    ...(o.short ? { short: o.short } : {}),
    value: o.type === 'string',
    multiple: o.multiple === true,
  }));
}

/** The table the scripts are generated from (every command in `commands`, in order). */
export function commandTable(commands: Record<string, Command>): CommandInfo[] {
  return Object.entries(commands).map(([name, c]) => ({
    name,
    summary: c.summary,
    subcommands: [...(c.spec?.subcommands ?? [])],
    options: optionsOf(c.spec?.options ?? {}),
  }));
}

const long = (o: OptionInfo) => `--${o.name}`;

export function bashScript(table: CommandInfo[]): string {
  const valued = [...new Set(table.flatMap((c) => c.options.filter((o) => o.value).map(long)))];
  const paths = valued.filter((o) => PATH_OPTIONS.has(o.slice(2)));
  const others = valued.filter((o) => !PATH_OPTIONS.has(o.slice(2)));
  const cases = table
    .map((c) => `    ${c.name}) opts="${c.options.map(long).join(' ')}"; subs="${c.subcommands.join(' ')}" ;;`)
    .join('\n');
  return `# baton completion for bash: eval "$(baton completion bash)"
_baton_completion() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}" cmd="\${COMP_WORDS[1]}" i
  COMPREPLY=()
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W "${table.map((c) => c.name).join(' ')} --help" -- "$cur") )
    return 0
  fi
  for (( i = 2; i < COMP_CWORD; i++ )); do
    [ "\${COMP_WORDS[i]}" = "--" ] && return 0  # after --: the words are psql's
  done
  local opts="" subs=""
  case "$cmd" in
${cases}
    *) return 0 ;;
  esac
  case "$prev" in
    ${paths.join('|') || '--no-path-options'}) COMPREPLY=( $(compgen -f -- "$cur") ); return 0 ;;
    ${others.join('|') || '--no-value-options'}) return 0 ;;
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=( $(compgen -W "$opts" -- "$cur") )
  elif [ "$COMP_CWORD" -eq 2 ] && [ -n "$subs" ]; then
    COMPREPLY=( $(compgen -W "$subs" -- "$cur") )
  fi
  return 0
}
complete -F _baton_completion baton
`;
}

/** Inside zsh/bash single quotes. */
const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export function zshScript(table: CommandInfo[]): string {
  const commands = table.map((c) => `    ${sq(`${c.name}:${c.summary}`)}`).join('\n');
  const cases = table
    .map((c) => {
      const valued = c.options.filter((o) => o.value).map(long);
      return `    ${c.name}) opts=(${c.options.map(long).join(' ')}); valued=(${valued.join(' ')}); subs=(${c.subcommands.join(' ')}) ;;`;
    })
    .join('\n');
  return `#compdef baton
# baton completion for zsh: source <(baton completion zsh), or save as _baton on $fpath
_baton() {
  local -a commands opts valued subs
  commands=(
${commands}
  )
  if (( CURRENT == 2 )); then
    _describe -t commands 'baton command' commands
    return
  fi
  (( \${words[(I)--]} > 0 && \${words[(I)--]} < CURRENT )) && return  # after --: psql's words
  case $words[2] in
${cases}
    *) return ;;
  esac
  if (( \${valued[(I)$words[CURRENT-1]]} )); then
    case $words[CURRENT-1] in
      ${[...PATH_OPTIONS].map((o) => `--${o}`).join('|')}) _files ;;
    esac
    return
  fi
  if [[ $PREFIX == -* ]]; then
    compadd -- $opts
  elif (( CURRENT == 3 && \${#subs} )); then
    compadd -- $subs
  fi
}
if [ "$funcstack[1]" = "_baton" ]; then
  _baton "$@"
else
  compdef _baton baton
fi
`;
}

/** Inside fish single quotes. */
const fq = (s: string) => `'${s.replace(/[\\']/g, (c) => `\\${c}`)}'`;

export function fishScript(table: CommandInfo[]): string {
  const lines = [
    '# baton completion for fish: baton completion fish > ~/.config/fish/completions/baton.fish',
    'complete -c baton -f',
    ...table.map((c) => `complete -c baton -n '__fish_use_subcommand' -a ${c.name} -d ${fq(c.summary)}`),
  ];
  for (const c of table) {
    if (c.subcommands.length) {
      lines.push(`complete -c baton -n '__fish_seen_subcommand_from ${c.name}; and not __fish_seen_subcommand_from ${c.subcommands.join(' ')}' -a ${fq(c.subcommands.join(' '))}`);
    }
    for (const o of c.options) {
      const flags = [`-l ${o.name}`, ...(o.short ? [`-s ${o.short}`] : []), ...(o.value ? (PATH_OPTIONS.has(o.name) ? ['-r -F'] : ['-r']) : [])];
      lines.push(`complete -c baton -n '__fish_seen_subcommand_from ${c.name}' ${flags.join(' ')}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

export const completion = defineCommand(
  'print a shell completion script (bash, zsh, fish)',
  { name: 'completion', usage: USAGE, options: {}, positionals: { max: 1 }, subcommands: SHELLS },
  async ({ values, positionals }) => {
    const [shell] = positionals;
    if (!values.json && !(SHELLS as readonly string[]).includes(shell ?? '')) {
      throw new UsageError(shell ? `unknown shell "${t(shell)}" (bash, zsh or fish)` : 'say which shell: bash, zsh or fish');
    }
    const { loadAll } = await import('./index.ts');
    const table = commandTable(await loadAll());
    const script = shell === 'zsh' ? zshScript : shell === 'fish' ? fishScript : bashScript;
    output(values.json, { commands: table }, () => script(table));
    return 0;
  },
);
