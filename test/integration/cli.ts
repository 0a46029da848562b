// Runs the real compiled CLI as a child process, the way an operator does.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/pgrunbook.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Starts the CLI in `cwd` (where `.pgrunbook/runs` will be written). */
export function startCli(
  args: string[],
  opts: { cwd: string; env?: Record<string, string> },
): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => {
    stdout += c;
  });
  child.stderr!.setEncoding('utf8').on('data', (c: string) => {
    stderr += c;
  });
  const done = new Promise<CliResult>((res) => child.on('close', (code) => res({ code, stdout, stderr })));
  return { child, done };
}

/** Runs the CLI to completion. */
export function runCli(
  args: string[],
  opts: { cwd: string; env?: Record<string, string> },
): Promise<CliResult> {
  return startCli(args, opts).done;
}

/** A scratch working directory with the given files written into it. */
export function workdir(files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'pgrb-it-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

/** The only run's journal in a working directory, parsed. */
export function journalOf(cwd: string, runId?: string): Record<string, unknown>[] {
  const runs = join(cwd, '.pgrunbook', 'runs');
  const id = runId ?? readdirSync(runs)[0]!;
  const path = join(runs, id, 'journal.jsonl');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

/** The run ids in a working directory. */
export function runIds(cwd: string): string[] {
  const runs = join(cwd, '.pgrunbook', 'runs');
  return existsSync(runs) ? readdirSync(runs) : [];
}

/** JSON events printed by `--output json`. */
export function events(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));
}

/** An inventory of ssh hosts that are all aliases of one test sshd. */
export function sshInventory(
  ssh: { host: string; port: number; user: string; identityFile: string; knownHostsFile: string },
  names: string[],
  extra: { pg?: string; vars?: string } = {},
): string {
  const lines = [
    'defaults:',
    '  transport: ssh',
    `  ssh: { host: ${ssh.host}, port: ${ssh.port}, user: ${ssh.user}, identity_file: ${ssh.identityFile}, known_hosts: ${ssh.knownHostsFile} }`,
  ];
  if (extra.pg) lines.push(`  pg: ${extra.pg}`);
  if (extra.vars) lines.push(`vars: ${extra.vars}`);
  lines.push('hosts:');
  for (const n of names) lines.push(`  ${n}: {}`);
  return `${lines.join('\n')}\n`;
}

/** Polls `ready` every 50 ms; after `timeoutMs` fails with `what`. */
export async function waitUntil(what: string, ready: () => boolean, timeoutMs = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!ready()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(what);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The registered outputs of the step whose id or register is `name`, from JSON events. */
export function outputsOf<T = Record<string, unknown>>(ev: Record<string, unknown>[], name: string): T {
  // The host it ran on: a step skipped on the others (`when`) has no outputs there.
  const e = ev.find(
    (x) =>
      x.type === 'step_finished' && x.outputs !== undefined && ((x.names as string[]) ?? []).includes(name),
  );
  if (!e) throw new Error(`no finished step named ${name}`);
  return e.outputs as T;
}
