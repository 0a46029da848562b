// Large, realistic inputs and how validation grows with them: an inventory of N Patroni hosts
// (ssh, pg, patroni settings, host vars, cluster groups with vars, zone groups with children)
// and a playbook of plays per cluster (templates, `when`, blocks with rescue/always, set_fact,
// registered values), sized by their number of YAML values (what MAX_VALUES counts).
//
//   npx tsx scripts/big-input.ts --write DIR --values 20000        # DIR/inventory.yml, DIR/playbook.yml
//   npm run build && npx tsx scripts/big-input.ts --measure        # table: values, command, ms, MB
//   npx tsx scripts/big-input.ts --measure --sizes 1000,5000 --shape all
//   npx tsx scripts/big-input.ts --measure --cli OTHER/bin/pgrunbook.js  # another build, to compare
//
// --shape cluster (default): each play targets one cluster of 3 hosts, the way a large fleet is
// worked on; --shape all: every play targets every host (the plan is hosts × steps: the worst
// case for `validate -i` and `plan`). Measurements run the built CLI (bin/pgrunbook.js) under
// /usr/bin/time, one process per command, so time and peak RSS include Node's start-up.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { countValues, sized } from '../test/fuzz/big-input.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

interface Measure {
  ms: number;
  mb: number;
  code: number;
  out: string;
}

function measure(cli: string, args: string[]): Measure {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', process.execPath, cli, ...args], {
    encoding: 'utf8',
    maxBuffer: 1 << 30,
  });
  const lines = r.stderr.trimEnd().split('\n');
  const [secs, kb] = lines.pop()!.split(' ').map(Number);
  return {
    ms: Math.round(secs! * 1000),
    mb: Math.round(kb! / 1024),
    code: r.status ?? -1,
    out: lines.join('\n'),
  };
}

function main(): void {
  const argv = process.argv.slice(2);
  const opt = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const shape = (opt('--shape') ?? 'cluster') as 'cluster' | 'all';
  if (shape !== 'cluster' && shape !== 'all') throw new Error('--shape cluster|all');
  const write = opt('--write');
  if (write) {
    const g = sized(Number(opt('--values') ?? 20000), shape);
    mkdirSync(write, { recursive: true });
    writeFileSync(join(write, 'inventory.yml'), g.inventory);
    writeFileSync(join(write, 'playbook.yml'), g.playbook);
    console.log(
      `${write}: inventory ${g.hosts} hosts (${countValues(g.inventory)} values, ${g.inventory.length} bytes), playbook ${g.plays} plays (${countValues(g.playbook)} values, ${g.playbook.length} bytes)`,
    );
    return;
  }
  if (!argv.includes('--measure')) {
    console.error(
      'usage: big-input.ts --write DIR [--values N] [--shape cluster|all] | --measure [--sizes 1000,2000,...] [--shape ...] [--cli PATH]',
    );
    process.exit(2);
  }
  // --cli: another build to compare with (e.g. a worktree of an older commit).
  const cli = resolve(opt('--cli') ?? join(ROOT, 'bin/pgrunbook.js'));
  const sizes = (opt('--sizes') ?? '1000,2000,5000,10000,20000,50000').split(',').map(Number);
  const dir = mkdtempSync(join(tmpdir(), 'pgrunbook-big-'));
  console.log(`shape ${shape}; each command is one process of the built CLI (start-up included)`);
  console.log(
    'target | inv values | pb values | hosts | plays | pb KiB | inv KiB | command     |    ms |  MB | exit',
  );
  try {
    for (const size of sizes) {
      const g = sized(size, shape);
      const pb = join(dir, `pb-${size}.yml`);
      const inv = join(dir, `inv-${size}.yml`);
      writeFileSync(pb, g.playbook);
      writeFileSync(inv, g.inventory);
      const runs: [string, string[]][] = [
        ['validate', ['validate', pb]],
        ['validate -i', ['validate', pb, '-i', inv]],
        ['plan', ['plan', pb, '-i', inv]],
      ];
      for (const [label, args] of runs) {
        const m = measure(cli, args);
        const row = [
          String(size).padStart(6),
          String(countValues(g.inventory)).padStart(10),
          String(countValues(g.playbook)).padStart(9),
          String(g.hosts).padStart(5),
          String(g.plays).padStart(5),
          String(Math.round(g.playbook.length / 1024)).padStart(6),
          String(Math.round(g.inventory.length / 1024)).padStart(7),
          label.padEnd(11),
          String(m.ms).padStart(5),
          String(m.mb).padStart(3),
          String(m.code),
        ];
        console.log(row.join(' | '));
        if (m.code !== 0 && argv.includes('--verbose')) console.log(m.out.split('\n').slice(0, 5).join('\n'));
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
