import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CONFIG_SCHEMA_VERSION } from '../config/schema.js';
import { migrations } from '../store/migrations/index.js';
import { COMMANDS, completionScript } from './completion.js';
import { formatVersion, versionInfo } from './support.js';

const MAIN = new URL('./main.ts', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'portcullis-completion-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, PORTCULLIS_DATA: dir },
    timeout: 30_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** What bash offers for the command line `line` (the cursor at its end), with the script loaded. */
function bashComplete(script: string, line: string): string[] {
  const file = join(dir, 'portcullis.bash');
  writeFileSync(file, script);
  const words = line.split(' ');
  const r = spawnSync(
    'bash',
    [
      '-c',
      `source ${file}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _portcullis; printf '%s\\n' "\${COMPREPLY[@]}"`,
    ],
    { encoding: 'utf8', cwd: dir },
  );
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter((s) => s !== '');
}

describe('portcullis --version', () => {
  it('prints the package version, then the config schema, rule set and store schema versions', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    const r = cli(['--version']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines[0], `portcullis ${pkg.version}`);
    assert.match(lines[1]!, new RegExp(`^config schema ${CONFIG_SCHEMA_VERSION} \\(sha256:[0-9a-f]{12}\\)$`));
    assert.match(lines[2]!, /^rule set crs-3\.3\.\d+ \+ portcullis-rules \d+\.\d+\.\d+ \(\d+ rules\)$/);
    assert.equal(lines[3], `store schema ${Math.max(...migrations.map((m) => m.version))}`);
    assert.equal(r.stdout.trim(), formatVersion(await versionInfo()));
  });
});

describe('portcullis completion', () => {
  it('prints a bash script that completes commands, subcommands and flags', () => {
    const r = cli(['completion', 'bash']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /complete -o default -F _portcullis portcullis/);
    assert.equal(spawnSync('bash', ['-n'], { input: r.stdout }).status, 0, 'not valid bash');
    assert.deepEqual(bashComplete(r.stdout, 'portcullis ke'), ['keys']);
    assert.deepEqual(bashComplete(r.stdout, 'portcullis c').sort(), [
      'cert',
      'check',
      'clients',
      'completion',
    ]);
    assert.deepEqual(bashComplete(r.stdout, 'portcullis keys i'), ['import']);
    assert.deepEqual(bashComplete(r.stdout, 'portcullis keys import --sk'), ['--skip-existing']);
    assert.deepEqual(bashComplete(r.stdout, 'portcullis completion '), ['bash', 'zsh']);
    assert.deepEqual(bashComplete(r.stdout, 'portcullis --v'), ['--version']);
    // After a flag that takes a file: file names.
    writeFileSync(join(dir, 'keys.jsonl'), '');
    assert.deepEqual(bashComplete(r.stdout, 'portcullis keys import --file keys.j'), ['keys.jsonl']);
  });

  it('prints a zsh script over the same table of commands', () => {
    const r = cli(['completion', 'zsh']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^#compdef portcullis\n/);
    assert.match(r.stdout, /compdef _portcullis portcullis/);
    for (const [name, spec] of Object.entries(COMMANDS)) {
      assert.ok(r.stdout.includes(` ${name}`), name);
      for (const flag of spec.flags ?? []) assert.ok(r.stdout.includes(flag), `${name} ${flag}`);
    }
    const zsh = spawnSync('zsh', ['-n'], { input: r.stdout });
    if (zsh.error === undefined) assert.equal(zsh.status, 0, 'not valid zsh');
  });

  it('knows every command of the help text', () => {
    const help = cli(['--help']).stdout;
    const commands = new Set([...help.matchAll(/^ {2}portcullis ([a-z]+)/gm)].map((m) => m[1]!));
    for (const c of commands) assert.ok(c in COMMANDS, `no completion for "${c}"`);
  });

  it('answers 2 with its usage for another shell', () => {
    assert.equal(completionScript('fish'), undefined);
    const r = cli(['completion', 'fish']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /usage: portcullis completion bash\|zsh/);
  });
});
