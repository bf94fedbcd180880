/**
 * `portcullis completion bash|zsh`: shell completion for the commands, their
 * subcommands and flags, and file names after the flags that take a file.
 *
 *     eval "$(portcullis completion bash)"          # in ~/.bashrc
 *     portcullis completion zsh > "${fpath[1]}/_portcullis"   # then restart zsh
 *
 * The scripts are generated from {@link COMMANDS}, one table, so the two
 * shells offer the same words.
 */

/** A command: its subcommands (the word after it) and the flags it or any of its subcommands take. */
interface CommandSpec {
  sub?: readonly string[];
  flags?: readonly string[];
}

/** Every command of `portcullis --help`. */
export const COMMANDS: Readonly<Record<string, CommandSpec>> = {
  start: { flags: ['--config'] },
  check: { flags: ['--config'] },
  demo: { flags: ['--config'] },
  keys: {
    sub: ['create', 'list', 'revoke', 'rotate', 'import', 'help'],
    flags: [
      '--config',
      '--name',
      '--scopes',
      '--expires',
      '--tenant',
      '--json',
      '--overlap',
      '--file',
      '--dry-run',
      '--skip-existing',
    ],
  },
  clients: {
    sub: ['create', 'list', 'revoke', 'help'],
    flags: ['--config', '--name', '--scopes', '--tenant', '--json'],
  },
  tokens: {
    sub: ['revoke', 'list', 'help'],
    flags: ['--config', '--jti', '--sub', '--issuer', '--client', '--issued-before', '--json'],
  },
  cert: { sub: ['dev', 'pin'], flags: ['--out', '--force'] },
  audit: {
    sub: ['verify', 'tail', 'search'],
    flags: ['--config', '--public-key', '--follow', '--principal', '--since', '--decision', '--json'],
  },
  alerts: { sub: ['list'], flags: ['--config', '--since', '--json'] },
  blocks: {
    sub: ['list', 'add', 'lift'],
    flags: ['--config', '--all', '--json', '--ip', '--key', '--principal', '--for', '--status'],
  },
  explain: {
    flags: ['--config', '--request', '--token', '--key', '--claims', '--header', '--body', '--ip', '--json'],
  },
  admin: { sub: ['tokens'], flags: ['--config', '--role', '--name'] },
  schema: { flags: ['--markdown'] },
  completion: { sub: ['bash', 'zsh'] },
  help: {},
};

/** Flags whose value is a file name. */
export const FILE_FLAGS: readonly string[] = ['--config', '-c', '--file', '--public-key', '--out'];

const TOP = [...Object.keys(COMMANDS), '--version', '--help'];

function bash(): string {
  const cases = Object.entries(COMMANDS)
    .filter(([, spec]) => spec.sub !== undefined || spec.flags !== undefined)
    .map(
      ([name, spec]) =>
        `    ${name}) subs="${(spec.sub ?? []).join(' ')}"; flags="${(spec.flags ?? []).join(' ')}" ;;`,
    )
    .join('\n');
  return `# bash completion for portcullis: eval "$(portcullis completion bash)"
_portcullis() {
  local cur prev subs flags
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  case "$prev" in
    ${FILE_FLAGS.join('|')})
      COMPREPLY=( $(compgen -f -- "$cur") )
      return 0 ;;
  esac
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W "${TOP.join(' ')}" -- "$cur") )
    return 0
  fi
  subs=""; flags=""
  case "\${COMP_WORDS[1]}" in
${cases}
  esac
  if [ "$COMP_CWORD" -eq 2 ] && [ -n "$subs" ] && [ "\${cur#-}" = "$cur" ]; then
    COMPREPLY=( $(compgen -W "$subs" -- "$cur") )
  else
    COMPREPLY=( $(compgen -W "$flags --help" -- "$cur") )
  fi
  return 0
}
complete -o default -F _portcullis portcullis
`;
}

function zsh(): string {
  const cases = Object.entries(COMMANDS)
    .filter(([, spec]) => spec.sub !== undefined || spec.flags !== undefined)
    .map(
      ([name, spec]) =>
        `    ${name}) subs=(${(spec.sub ?? []).join(' ')}); flags=(${(spec.flags ?? []).join(' ')}) ;;`,
    )
    .join('\n');
  return `#compdef portcullis
# zsh completion for portcullis: portcullis completion zsh > "\${fpath[1]}/_portcullis"
# (or, after compinit: source <(portcullis completion zsh))
_portcullis() {
  local -a subs flags
  case "\${words[CURRENT-1]}" in
    ${FILE_FLAGS.join('|')})
      _files
      return ;;
  esac
  if (( CURRENT == 2 )); then
    compadd -- ${TOP.join(' ')}
    return
  fi
  case "\${words[2]}" in
${cases}
  esac
  if (( CURRENT == 3 )) && (( \${#subs} > 0 )) && [[ "\${words[CURRENT]}" != -* ]]; then
    compadd -- $subs
  else
    compadd -- $flags --help
  fi
}
if [[ "\${funcstack[1]}" = "_portcullis" ]]; then
  _portcullis "$@"
else
  compdef _portcullis portcullis
fi
`;
}

/** The completion script for `shell`, or undefined for a shell it does not know. */
export function completionScript(shell: string): string | undefined {
  if (shell === 'bash') return bash();
  if (shell === 'zsh') return zsh();
  return undefined;
}
