import { chmod, chown, copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lookupUser, makeTempDir, SERVER_USER } from './osuser.js';
import { shQuote } from './procs.js';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'chef-client');

// Options for installChefStandIn.
export interface ChefStandInOptions {
  // The setting the stand-in's "template" converges, and the value it wants (work_mem, 64MB).
  setting?: string;
  value?: string;
  // Initial content of the managed file (a small postgresql.conf with work_mem = '4MB').
  conf?: string;
}

// A stand-in chef-client installed for one test, in a directory of its own on the SSH test host
// (this machine): point chef.run's `command` at `command`.
export interface ChefStandIn {
  dir: string;
  // Path of the executable stand-in.
  command: string;
  // The postgresql.conf-like file it manages.
  confFile: string;
  // Makes later runs fail (Chef's error block, exit 1) in a resource after the file's.
  setFailing(on: boolean): Promise<void>;
  // The argv of every call so far, oldest first.
  invocations(): Promise<string[][]>;
  remove(): Promise<void>;
}

const DEFAULT_CONF = [
  '# Managed by Chef (pgrunbook test stand-in)',
  "listen_addresses = '127.0.0.1'",
  "shared_buffers = '128MB'",
  "work_mem = '4MB'",
  "maintenance_work_mem = '64MB'",
  '',
].join('\n');

// Copies the stand-in chef-client and its config into a fresh directory the SSH user owns.
export async function installChefStandIn(opts: ChefStandInOptions = {}): Promise<ChefStandIn> {
  const dir = await makeTempDir('pgrb-chef-');
  const command = join(dir, 'chef-client');
  const confFile = join(dir, 'postgresql.conf');
  const config = [
    `CONF_FILE=${shQuote(confFile)}`,
    `SETTING=${shQuote(opts.setting ?? 'work_mem')}`,
    `VALUE=${shQuote(opts.value ?? '64MB')}`,
    '',
  ].join('\n');
  await copyFile(SCRIPT, command);
  await chmod(command, 0o755);
  await writeFile(join(dir, 'chef-client.conf'), config, { mode: 0o644 });
  await writeFile(confFile, opts.conf ?? DEFAULT_CONF, { mode: 0o644 });
  const { uid, gid } = await lookupUser(SERVER_USER);
  // The stand-in runs as the SSH user: it rewrites the file and appends to its log.
  for (const f of [command, confFile, join(dir, 'chef-client.conf')]) await chown(f, uid, gid);
  return {
    dir,
    command,
    confFile,
    setFailing: async (on) => {
      if (on) await writeFile(join(dir, 'fail'), '');
      else await rm(join(dir, 'fail'), { force: true });
    },
    invocations: async () => {
      const log = await readFile(join(dir, 'invocations.log'), 'utf8').catch(() => '');
      const calls: string[][] = [];
      for (const line of log.split('\n')) {
        if (line === 'call') calls.push([]);
        else if (line.startsWith('\t')) calls.at(-1)?.push(line.slice(1));
      }
      return calls;
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
