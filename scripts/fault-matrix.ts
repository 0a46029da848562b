// The fault matrix of issue 12: snapshot-backup.yml and pg-major-upgrade.yml run on a real Patroni +
// etcd cluster over a real sshd, each cell injecting one fault (the runner killed or signalled at a
// step boundary or mid-step, a member's Patroni stopped, etcd frozen, SSH cut, the backup backend
// terminated, PostgreSQL restarted, the backup disk unwritable, rsync missing), then reading the
// truth from the servers. Prints the table; exits 1 if a cell stayed paused after the runner died
// or a summary claims less damage than the servers show. Needs `npm run build` and root.
//   npx tsx scripts/fault-matrix.ts [--only PATTERN] [--json] [--members N] [--pause-limit S]
//   npx tsx scripts/fault-matrix.ts --table RESULTS.json    (the table of a saved --json run)
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { allCells, initCells } from '../test/fault/cells.js';
import { startLab } from '../test/fault/lab.js';
import { type CellResult, DEFAULTS, runCell } from '../test/fault/run.js';
import { failing, renderTable } from '../test/fault/table.js';

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    json: { type: 'boolean', default: false },
    members: { type: 'string', default: '2' },
    'pause-limit': { type: 'string', default: String(DEFAULTS.pauseLimitS) },
    list: { type: 'boolean', default: false },
    table: { type: 'string' },
  },
});
if (values.table) {
  const saved = JSON.parse(readFileSync(values.table, 'utf8')) as {
    seconds: number;
    options: typeof DEFAULTS;
    results: CellResult[];
  };
  process.stdout.write(renderTable(saved.results, saved.options, saved.seconds));
  process.exit(saved.results.some(failing) ? 1 : 0);
}
const opts = { ...DEFAULTS, pauseLimitS: Number(values['pause-limit']) };
const only = values.only === undefined ? undefined : new RegExp(values.only, 'i');
const cells = allCells().filter((c) => !only || only.test(c.id));
if (values.list) {
  for (const c of cells) process.stdout.write(`${c.id}${c.ci ? '   (CI slice)' : ''}\n`);
  process.exit(0);
}
if (cells.length === 0) {
  process.stderr.write(`no cell matches ${values.only}\n`);
  process.exit(2);
}
await initCells();
const t0 = Date.now();
const lab = await startLab(Number(values.members));
const results: CellResult[] = [];
try {
  for (const c of cells) {
    process.stderr.write(`[${results.length + 1}/${cells.length}] ${c.id} … `);
    const r = await runCell(lab, c, opts);
    results.push(r);
    process.stderr.write(
      `${r.seconds} s, exit ${r.claim.hung ? 'hung' : (r.claim.exit ?? r.claim.signal)}, ${failing(r) ? 'FAIL' : 'ok'}\n`,
    );
  }
} finally {
  await lab.stop();
}
const seconds = (Date.now() - t0) / 1000;
if (values.json) process.stdout.write(`${JSON.stringify({ seconds, options: opts, results }, null, 2)}\n`);
else process.stdout.write(renderTable(results, opts, seconds));
process.exit(results.some(failing) ? 1 : 0);
