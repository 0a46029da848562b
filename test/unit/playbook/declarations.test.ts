// Playbook variable declarations (`variables:`): checked themselves, against -e and against an
// inventory, each problem located at the declaration and, for the inventory's part, in the
// inventory; a declared playbook refuses names it does not declare; defaults reach the templates.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { prepare } from '../../../src/engine/engine.js';
import { formatProblem } from '../../../src/errors.js';
import { loadInventory } from '../../../src/inventory/inventory.js';
import { loadPlaybook } from '../../../src/playbook/validate.js';
import { typeProblem } from '../../../src/playbook/variables.js';
import { registry } from '../../../src/steps/registry.js';

const dir = mkdtempSync(join(tmpdir(), 'pgrb-decl-'));
const write = (name: string, text: string) => {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
};

const PLAYBOOK = `variables:
  backup_root: { type: path, required: true, description: where backups live }
  ttl: { type: integer, default: 30, description: the DCS ttl }
  mode: { type: string, choices: [fast, slow], default: fast, description: how }
  only_db1: { type: path, required: true, hosts: db1, description: needed on db1 alone }
plays:
- name: p
  hosts: dbs
  steps:
    - id: out
      shell: "echo {{ backup_root }} {{ ttl }} {{ mode }}"
`;

const INVENTORY = `hosts:
  db1:
    transport: local
    vars: { backup_root: /b1, ttl: "30s", only_db1: /x }
  db2:
    transport: local
groups:
  dbs:
    hosts: [db1, db2]
    vars: { mode: medium }
`;

function problems(pb: string, inv?: string, extraVars: Record<string, unknown> = {}, limit?: string) {
  const file = write('pb.yml', pb);
  const inventory = inv ? loadInventory(write('inv.yml', inv)) : undefined;
  expect(inventory?.problems ?? []).toEqual([]);
  return loadPlaybook(file, { inventory: inventory?.inventory, extraVars, limit }).problems.map(
    formatProblem,
  );
}

describe('variables: declarations', () => {
  it('a required variable a host lacks, and values of the wrong type: at the declaration and in the inventory', () => {
    const pb = join(dir, 'pb.yml');
    const inv = join(dir, 'inv.yml');
    expect(problems(PLAYBOOK, INVENTORY)).toEqual([
      `${pb}:2:3: variables.backup_root: required variable "backup_root" (where backups live) is not set for db2 in ${inv}: set it in the inventory's vars (of the host, a group, or all) or give -e backup_root=VALUE`,
      `${pb}:3:3: variables.ttl: "ttl" (the DCS ttl) has a value of the wrong type for db1 in ${inv}: expected an integer, got "30s"`,
      `${pb}:4:3: variables.mode: "mode" (how) has a value of the wrong type for db1, db2 in ${inv}: expected one of "fast", "slow", got "medium"`,
      `${inv}:4:36: hosts.db1.vars.ttl: ttl: expected an integer, got "30s" (${pb} declares it integer at line 3)`,
      `${inv}:5:3: hosts.db2: host db2 has no "backup_root", which ${pb} requires (declared at line 2): where backups live`,
      // One problem for the group's value, not one per host that has it.
      `${inv}:10:19: groups.dbs.vars.mode: mode: expected one of "fast", "slow", got "medium" (${pb} declares it string of fast, slow at line 4)`,
    ]);
  });

  it('--limit: only the hosts the run works on must have a required variable', () => {
    const inv = INVENTORY.replace('ttl: "30s", ', '').replace('    vars: { mode: medium }\n', '');
    expect(problems(PLAYBOOK, inv, {}, 'db1')).toEqual([]);
    expect(problems(PLAYBOOK, inv, {}, 'db2')).toEqual([
      expect.stringContaining(
        'variables.backup_root: required variable "backup_root" (where backups live) is not set:',
      ),
    ]);
  });

  it('set on no host: one problem, saying -e', () => {
    const pb = PLAYBOOK.replace(
      'only_db1: { type: path, required: true, hosts: db1,',
      'only_db1: { type: path,',
    );
    const out = problems(
      pb,
      'hosts:\n  db1: { transport: local, vars: { ttl: 5 } }\ngroups:\n  dbs: { hosts: [db1] }\n',
    );
    expect(out).toEqual([
      `${join(dir, 'pb.yml')}:2:3: variables.backup_root: required variable "backup_root" (where backups live) is not set: give -e backup_root=VALUE, or set it in ${join(dir, 'inv.yml')}'s vars (of the hosts, a group, or all)`,
    ]);
    // -e fills it for every host, and is type-checked itself.
    expect(
      problems(pb, 'hosts:\n  db1: { transport: local }\ngroups:\n  dbs: { hosts: [db1] }\n', {
        backup_root: '/b',
      }),
    ).toEqual([]);
    expect(problems(pb, undefined, { backup_root: 'relative' })).toEqual([
      `${join(dir, 'pb.yml')}:2:3: variables.backup_root: -e backup_root: expected an absolute path, got "relative"`,
    ]);
  });

  it('-e of a name the playbook does not declare is refused (a typo would be ignored), a play variable may be overridden', () => {
    expect(problems(PLAYBOOK, undefined, { backup_rot: '/b' })).toEqual([
      `${join(dir, 'pb.yml')}:1:1: variables: -e backup_rot: the playbook declares no variable "backup_rot" (did you mean "backup_root"?)`,
    ]);
    const withPlayVar = PLAYBOOK.replace('  hosts: dbs\n', '  hosts: dbs\n  vars: { label: x }\n');
    expect(problems(withPlayVar, undefined, { label: 'y' })).toEqual([]);
  });

  it('a name used but not declared is refused where it is used, with or without default()', () => {
    const pb = PLAYBOOK.replace('{{ mode }}"', "{{ mode }} {{ archive_dir | default('/a') }}\"");
    expect(problems(pb)).toEqual([
      `${join(dir, 'pb.yml')}:11:14: plays[0].steps[0].shell.cmd: "archive_dir" is not declared: declare it under variables: (type, description, required or default), or set it in the play's vars`,
    ]);
  });

  it('the declarations themselves: a default of the wrong type, required with a default, a reserved name, unknown keys', () => {
    const pb = `variables:
  ttl: { type: integer, default: "thirty", description: t }
  a: { type: string, required: true, default: x, description: a }
  host: { type: string, description: h }
  b: { type: sting, description: b }
plays:
- name: p
  hosts: all
  steps:
    - shell: "echo {{ ttl }} {{ a }}"
`;
    const f = join(dir, 'pb.yml');
    expect(problems(pb)).toEqual([
      `${f}:2:34: variables.ttl.default: the default does not fit the declaration: expected an integer, got "thirty"`,
      `${f}:3:32: variables.a.required: a variable with a default is not required: drop one of them`,
      `${f}:4:3: variables.host: "host" is set by pgrunbook and cannot be declared`,
      `${f}:5:14: variables.b.type: expected string, integer, number, boolean, path (absolute), host (an inventory host name), list or mapping, got string "sting"`,
    ]);
    expect(problems('variables: {}\nplay:\n- name: p\n')).toEqual([
      `${f}:1:1: expected plays: (the list of plays) beside variables:`,
      `${f}:2:1: play: unknown key "play" (did you mean "plays"?): a playbook is a list of plays, or a mapping of variables: and plays:`,
    ]);
  });

  it('declared defaults reach the templates, below the inventory and -e', async () => {
    const f = write('pb.yml', PLAYBOOK);
    const inv = loadInventory(
      write(
        'inv.yml',
        'hosts:\n  db1: { transport: local, vars: { backup_root: /b1, only_db1: /x, ttl: 7 } }\n  db2: { transport: local, vars: { backup_root: /b2 } }\ngroups:\n  dbs: { hosts: [db1, db2] }\n',
      ),
    ).inventory!;
    const extraVars = { mode: 'slow' };
    const pb = loadPlaybook(f, { inventory: inv, extraVars });
    expect(pb.problems).toEqual([]);
    const { plan } = await prepare(
      { playbook: pb.playbook!, inventory: inv, steps: registry, extraVars },
      { mode: 'offline' },
    );
    expect(plan.problems).toEqual([]);
    const lines = JSON.stringify(plan);
    expect(lines).toContain('echo /b1 7 slow');
    expect(lines).toContain('echo /b2 30 slow');
  });

  it('review findings: a null value, an unknown host given with -e, a declaration hosts pattern that matches nothing', () => {
    const pb = join(dir, 'pb.yml');
    const inv =
      'hosts:\n  db1: { transport: local, vars: { backup_root: /b, ttl: null, only_db1: /x } }\ngroups:\n  dbs: { hosts: [db1] }\n';
    // `ttl:` with no value would hide the default 30 (the upgrade's ttl + 5 wait).
    expect(problems(PLAYBOOK, inv)).toEqual([
      `${pb}:3:3: variables.ttl: "ttl" (the DCS ttl) has a value of the wrong type for db1 in ${join(dir, 'inv.yml')}: expected an integer, got null`,
      expect.stringContaining('hosts.db1.vars.ttl: ttl: expected an integer, got null'),
    ]);
    const withHost = PLAYBOOK.replace(
      '  only_db1:',
      '  from: { type: host, description: the host to copy }\n  only_db1:',
    ).replace('hosts: db1, description: needed', 'hosts: db9, description: needed');
    const inv2 = inv.replace('ttl: null, ', '');
    expect(problems(withHost, inv2, { from: 'nosuch' })).toEqual([
      `${pb}:5:3: variables.from: -e from: expected an inventory host name, got "nosuch", which is no host of the inventory`,
      expect.stringMatching(
        /^.*:6:\d+: variables\.only_db1\.hosts: host pattern "db9" matches no host or group in .*inv\.yml/,
      ),
    ]);
  });

  it('steps that read a host variable themselves see -e and the declared default (pg.basebackup runs as pg_os_user)', async () => {
    const root = fileURLToPath(new URL('../../../', import.meta.url));
    const invFile = join(root, 'examples/gitlab-like/inventory.yml');
    const inv = loadInventory(invFile).inventory!;
    const extraVars = { pg_os_user: 'alice', backup_from: 'patroni-02-db-gprd' };
    const pb = loadPlaybook(join(root, 'playbooks/basebackup.yml'), { inventory: inv, extraVars });
    expect(pb.problems).toEqual([]);
    const { plan } = await prepare(
      { playbook: pb.playbook!, inventory: inv, steps: registry, extraVars },
      { mode: 'offline' },
    );
    expect(plan.problems).toEqual([]);
    const text = JSON.stringify(plan);
    expect(text).toContain('sudo -n -u alice');
    expect(text).not.toContain('sudo -n -u gitlab-psql');
  });

  it('malformed declarations are located problems, never a crash; -e of a prototype name is not declared', () => {
    const inv = 'hosts:\n  db1: { transport: local, vars: { x: 1 } }\n';
    for (const bad of [
      '  x: { type: string, choices: 5, description: d }',
      '  x: { type: string, hosts: 7, description: d }',
      '  x: { type: sting, default: [1], description: 5 }',
      '  x: 5',
    ]) {
      const pb = `variables:\n${bad}\nplays:\n- name: p\n  hosts: all\n  steps:\n    - shell: "echo {{ x }}"\n`;
      const out = problems(pb, inv, { x: 'y' });
      expect(out.length, bad).toBeGreaterThan(0);
      for (const line of out) expect(line, bad).toMatch(/^\/.*\/pb\.yml:2:\d+: variables\.x/);
    }
    expect(problems('variables: [1]\nplays:\n- name: p\n  hosts: all\n  steps: []\n')).toEqual([
      expect.stringMatching(/pb\.yml:1:12: variables: /),
    ]);
    expect(problems(PLAYBOOK, undefined, { constructor: 'x' })).toEqual([
      `${join(dir, 'pb.yml')}:1:1: variables: -e constructor: the playbook declares no variable "constructor"`,
    ]);
  });

  it('types', () => {
    expect(typeProblem({ type: 'host' }, 'db9', new Set(['db1']))).toMatch(/no host of the inventory/);
    expect(typeProblem({ type: 'list' }, 'a')).toBe('expected a list, got "a"');
    expect(typeProblem({ type: 'number' }, 1.5)).toBeUndefined();
    expect(typeProblem({ type: 'boolean' }, 'true')).toBe('expected true or false, got "true"');
  });
});

describe('the shipped playbooks', () => {
  const root = fileURLToPath(new URL('../../../playbooks/', import.meta.url));
  const files = readdirSync(root).filter((f) => f.endsWith('.yml'));

  it.each(files)('%s declares every variable it reads, each described', (f) => {
    const r = loadPlaybook(join(root, f));
    expect(r.problems.map(formatProblem)).toEqual([]);
    expect(r.playbook!.variables).toBeDefined();
    for (const [name, d] of Object.entries(r.playbook!.variables!))
      expect(d.description.length, name).toBeGreaterThan(5);
  });

  // A literal `NAME | default(X)` beside a declared default: the declared one wins (it is always
  // defined), so the two must agree or the playbook would silently change behaviour.
  it.each(files)('%s: an inline default() of a declared variable agrees with its declaration', (f) => {
    const text = readFileSync(join(root, f), 'utf8');
    const decls = loadPlaybook(join(root, f)).playbook!.variables!;
    for (const m of text.matchAll(/\b([a-z_][a-z0-9_]*) \| default\(('[^']*'|-?\d+|true|false|\[\])\)/g)) {
      const d = decls[m[1]!];
      if (!d || d.default === undefined) continue;
      expect(d.default, `${m[0]}`).toEqual(parse(m[2]!));
    }
  });
});

describe('the command line', () => {
  const repo = fileURLToPath(new URL('../../../', import.meta.url));
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      cwd: repo,
      encoding: 'utf8',
    });

  it('`pgrunbook vars playbooks/pg-major-upgrade.yml` lists its variables', () => {
    const r = cli('vars', 'playbooks/pg-major-upgrade.yml');
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^VARIABLE\s+TYPE\s+REQUIRED\/DEFAULT\s+APPLIES TO\s+DESCRIPTION$/);
    expect(lines.find((l) => l.startsWith('pgdata '))).toMatch(
      /^pgdata\s+path\s+required\s+patroni\s+the old major/,
    );
    expect(lines.find((l) => l.startsWith('patroni_ttl '))).toMatch(
      /^patroni_ttl\s+integer\s+default 30\s+every host\s+/,
    );
  });

  it('validate -i: a required variable one host lacks is reported at the declaration and at the host, exit 2', () => {
    const text = readFileSync(join(repo, 'examples/gitlab-like/inventory.yml'), 'utf8')
      .replace('  pgdata: /var/opt/gitlab/postgresql/data\n', '')
      .replace(
        '    pg: { host: 10.220.16.101 }\n',
        '    pg: { host: 10.220.16.101 }\n    vars: { pgdata: /var/opt/gitlab/postgresql/data }\n',
      );
    // Not under examples/: the fuzz corpus test lists that directory's files.
    const inv = join(dir, 'gitlab-missing-pgdata.yml');
    writeFileSync(inv, text);
    try {
      const r = cli('validate', 'playbooks/pg-major-upgrade.yml', '-i', inv);
      expect(r.status).toBe(2);
      const decl = readFileSync(join(repo, 'playbooks/pg-major-upgrade.yml'), 'utf8')
        .split('\n')
        .findIndex((l) => l.startsWith('  pgdata:'));
      expect(r.stderr).toContain(
        `playbooks/pg-major-upgrade.yml:${decl + 1}:3: variables.pgdata: required variable "pgdata" (the old major's data directory (same name on every node: rsync recreates it by name)) is not set for patroni-02-db-gprd, patroni-03-db-gprd in ${inv}`,
      );
      expect(r.stderr).toMatch(
        new RegExp(
          `${inv.replace(/[.]/g, '\\.')}:\\d+:3: hosts\\.patroni-02-db-gprd: host patroni-02-db-gprd has no "pgdata"`,
        ),
      );
      expect(r.stderr).not.toMatch(/at .*\.ts:\d+/); // no stack trace
    } finally {
      rmSync(inv, { force: true });
    }
  });
});
