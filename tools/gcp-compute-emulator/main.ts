// Runs the emulator as its own process (for `pgrunbook lab`): prints one JSON line
// `{"url","host","port","project","root","pid"}` when it listens; stops on SIGTERM/SIGINT.
//
//   tsx tools/gcp-compute-emulator/main.ts --root DIR [--port N] [--project P]
//       [--operation-delay-ms N] [--wait-max-ms N] [--seed FILE]
// Environment fallbacks: GCE_EMULATOR_ROOT, GCE_EMULATOR_PORT, GCE_EMULATOR_PROJECT.
// The seed file is JSON `{ "disks": [SeedDisk...], "instances": [SeedInstance...] }`: another
// process cannot call addDisk, so it says up front which directories are disks.
import { readFile } from 'node:fs/promises';
import { type SeedDisk, type SeedInstance, startComputeEmulator } from './index.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0) return process.argv[i + 1];
  const eq = process.argv.find((a) => a.startsWith(`--${name}=`));
  return eq?.slice(name.length + 3);
}

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    process.stderr.write(`gcp-compute emulator: --${name} expects a whole number, got '${v}'\n`);
    process.exit(2);
  }
  return n;
}

const root = arg('root') ?? process.env.GCE_EMULATOR_ROOT;
if (!root) {
  process.stderr.write('gcp-compute emulator: --root DIR (or GCE_EMULATOR_ROOT) is required\n');
  process.exit(2);
}
const emu = await startComputeEmulator({
  root,
  port: num('port', arg('port') ?? process.env.GCE_EMULATOR_PORT),
  project: arg('project') ?? process.env.GCE_EMULATOR_PROJECT,
  operationDelayMs: num('operation-delay-ms', arg('operation-delay-ms')),
  waitMaxMs: num('wait-max-ms', arg('wait-max-ms')),
});
const seedFile = arg('seed');
if (seedFile) {
  try {
    const seed = JSON.parse(await readFile(seedFile, 'utf8')) as {
      disks?: SeedDisk[];
      instances?: SeedInstance[];
    };
    for (const d of seed.disks ?? []) await emu.addDisk(d);
    for (const i of seed.instances ?? []) await emu.addInstance(i);
  } catch (err) {
    process.stderr.write(`gcp-compute emulator: seed ${seedFile}: ${(err as Error).message}\n`);
    await emu.stop();
    process.exit(2);
  }
}
process.stdout.write(
  `${JSON.stringify({ url: emu.url, host: emu.host, port: emu.port, project: emu.project, root: emu.root, pid: process.pid })}\n`,
);

let stopping = false;
for (const sig of ['SIGTERM', 'SIGINT'] as const)
  process.on(sig, () => {
    if (stopping) process.exit(1);
    stopping = true;
    void emu.stop().then(() => process.exit(0));
  });
