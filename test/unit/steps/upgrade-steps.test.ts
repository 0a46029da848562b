// The steps of a major upgrade (pg.ctl, pg.initdb, pg.upgrade, pg.sync_replicas,
// patroni.edit_config, backup.recover) and how they run things as the server's OS user: the exact
// command lines a reviewer reads in the plan, their undo, and what the scripts do when run — the
// scripts are executed by sh over the local transport against fake pg_ctl/pg_upgrade/pg_controldata.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { LocalTransport } from '../../../src/connections/local.js';
import { asLogin, asUser, serverUser } from '../../../src/connections/run-as.js';
import { StepFailure } from '../../../src/errors.js';
import type { InventoryHost } from '../../../src/inventory/inventory.js';
import recover from '../../../src/steps/backup/recover.js';
import { type ApplyContext, isMutating } from '../../../src/steps/define.js';
import editConfig, { editPatroniYaml } from '../../../src/steps/patroni/edit-config.js';
import pgCtl from '../../../src/steps/pg/ctl.js';
import initdb from '../../../src/steps/pg/initdb.js';
import syncReplicas from '../../../src/steps/pg/sync-replicas.js';
import upgrade from '../../../src/steps/pg/upgrade.js';
import { ctxOf } from '../helpers/plan-context.js';

// ---------------------------------------------------------------------------------------------
// helpers

const ME = userInfo().username;

/** An inventory host; ssh with login `admin` unless overridden. */
const host = (o: Partial<InventoryHost> = {}): InventoryHost => ({
  name: 'db1',
  transport: 'ssh',
  ssh: { host: '10.0.0.1', user: 'admin' } as InventoryHost['ssh'],
  vars: {},
  groups: [],
  ...o,
});

/** A local host whose commands run unwrapped (the login is the server user). */
const localMe = (vars: Record<string, unknown> = {}): InventoryHost => ({
  name: 'here',
  transport: 'local',
  vars: { pg_os_user: ME, ...vars },
  groups: [],
});

/** An ApplyContext over the real local transport; `logs` collects ctx.log lines. */
function applyCtx(h: InventoryHost): ApplyContext & { logs: string[] } {
  const logs: string[] = [];
  const t = new LocalTransport();
  return {
    ...ctxOf(h),
    logs,
    transport: async () => t,
    pg: () => Promise.reject(new Error('no pg in this test')),
    sessions: {
      open: () => Promise.reject(new Error('no sessions')),
      get: () => undefined,
      release: async () => {},
    },
    guards: {
      start: () => Promise.reject(new Error('no guards')),
      tell: () => {},
      end: async () => undefined,
      has: () => false,
    },
    log: (s) => logs.push(s),
    output: () => {},
    prompt: async () => '',
    changing: () => {},
    artifact: () => {},
    keep: () => {},
    signal: new AbortController().signal,
  };
}

/** What sh makes of one quoted word (proves the quoting round-trips). */
function unquote(word: string): string {
  const r = spawnSync('/bin/sh', ['-c', `printf %s ${word}`], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  return r.stdout;
}

/** The argv sh makes of a simple command line (no expansions in it). */
function argvOf(line: string): string[] {
  const r = spawnSync('/bin/sh', ['-c', `set -- ${line}; printf '%s\\0' "$@"`], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  return r.stdout.split('\0').slice(0, -1);
}

/** Splits `TOOL -u USER -- sh -c 'SCRIPT'` into its parts, SCRIPT unquoted by sh. */
function unwrap(line: string): { tool: string; user: string; script: string } {
  const m = /^(sudo -n|runuser) -u ('[^']*'|\S+) -- sh -c ('.*')$/s.exec(line);
  if (!m) throw new Error(`not an asUser line: ${line}`);
  return { tool: m[1]!, user: unquote(m[2]!), script: unquote(m[3]!) };
}

/** `sudo -n -- sh -c 'SCRIPT'` (become, as the login's root) → SCRIPT. */
function unbecome(line: string): string {
  const m = /^sudo -n -- sh -c ('.*')$/s.exec(line);
  if (!m) throw new Error(`not a become line: ${line}`);
  return unquote(m[1]!);
}

const commands = (ops: { kind: string; line?: string }[]) =>
  ops.filter((o) => o.kind === 'command').map((o) => o.line!);

const temps: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'pgrb-upgrade-steps-'));
  temps.push(d);
  return d;
};
afterAll(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

/** Writes an executable sh script. */
function exe(path: string, body: string): void {
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
}

// ---------------------------------------------------------------------------------------------

describe('asUser / serverUser: decided from the inventory alone', () => {
  afterEach(() => vi.restoreAllMocks());

  it('become sudo switches straight to the user, even when the login already is that user', () => {
    expect(asUser(host({ become: 'sudo' }), 'postgres', 'pg_ctl status')).toBe(
      "sudo -n -u postgres -- sh -c 'pg_ctl status'",
    );
    const same = host({ become: 'sudo', ssh: { host: 'h', user: 'postgres' } as InventoryHost['ssh'] });
    expect(asUser(same, 'postgres', 'id -un')).toBe("sudo -n -u postgres -- sh -c 'id -un'");
    // A safe word is left bare, as everywhere in plans.
    expect(asUser(host({ become: 'sudo' }), 'postgres', 'id')).toBe('sudo -n -u postgres -- sh -c id');
  });

  it('an ssh login that is the user runs the script unchanged; another login goes through sudo -n -u', () => {
    const pgLogin = host({ ssh: { host: 'h', user: 'gitlab-psql' } as InventoryHost['ssh'] });
    expect(asUser(pgLogin, 'gitlab-psql', "echo 'a b'")).toBe("echo 'a b'");
    expect(asUser(host(), 'gitlab-psql', 'id -un')).toBe("sudo -n -u gitlab-psql -- sh -c 'id -un'");
    // No ssh user in the inventory: it cannot be the server user.
    expect(asUser(host({ ssh: { host: 'h' } as InventoryHost['ssh'] }), 'postgres', 'id -un')).toBe(
      "sudo -n -u postgres -- sh -c 'id -un'",
    );
  });

  it('local: the current user runs unchanged; root uses runuser; anyone else sudo -n -u', () => {
    const local: InventoryHost = { name: 'l', transport: 'local', vars: {}, groups: [] };
    expect(asUser(local, ME, 'id -un')).toBe('id -un');
    vi.spyOn(process, 'getuid').mockReturnValue(0);
    expect(asUser(local, 'pgrb-no-such-user', 'id -un')).toBe(
      "runuser -u pgrb-no-such-user -- sh -c 'id -un'",
    );
    vi.spyOn(process, 'getuid').mockReturnValue(1000);
    expect(asUser(local, 'pgrb-no-such-user', 'id -un')).toBe(
      "sudo -n -u pgrb-no-such-user -- sh -c 'id -un'",
    );
  });

  it('the script and the user are quoted so that sh gets them back byte for byte', () => {
    const script = `cd '/srv/it'"'"'s here' && echo "$HOME" \`id\`\nexit 3`;
    const line = asUser(host({ become: 'sudo' }), 'pg user', script);
    const w = unwrap(line);
    expect(w).toEqual({ tool: 'sudo -n', user: 'pg user', script });
  });

  it('asLogin: through become when the host has it, else the script as is', () => {
    expect(asLogin(host({ become: 'sudo' }), "echo 'x'")).toBe(`sudo -n -- sh -c 'echo '\\''x'\\'''`);
    expect(asLogin(host(), 'echo x')).toBe('echo x');
  });

  it('serverUser: the given name, else host var pg_os_user, else postgres', () => {
    expect(serverUser(host({ vars: { pg_os_user: 'gitlab-psql' } }), 'other')).toBe('other');
    expect(serverUser(host({ vars: { pg_os_user: 'gitlab-psql' } }))).toBe('gitlab-psql');
    expect(serverUser(host({ vars: { pg_os_user: '' } }))).toBe('postgres');
    expect(serverUser(host({ vars: { pg_os_user: 5 } }))).toBe('postgres');
    expect(serverUser(host())).toBe('postgres');
  });
});

// ---------------------------------------------------------------------------------------------

describe('pg.ctl', () => {
  const SPACED = '/var/lib/pg data/15/main';

  it('stop: one script as the server user, status first; pg_ctl found from PG_VERSION; paths quoted', () => {
    const h = host({ become: 'sudo', vars: { pgdata: SPACED, pg_os_user: 'gitlab-psql' } });
    const plan = pgCtl.plan(ctxOf(h), { action: 'stop' });
    expect(plan.action).toBe(`stop PostgreSQL in ${SPACED}`);
    const [line] = commands(plan.ops);
    const w = unwrap(line!);
    expect(w.tool).toBe('sudo -n');
    expect(w.user).toBe('gitlab-psql');
    const ctl = `"/usr/lib/postgresql/$(cat '${SPACED}/PG_VERSION')/bin/pg_ctl"`;
    expect(w.script.split('\n')).toEqual([
      `if [ ! -e '${SPACED}/PG_VERSION' ]; then echo 'pgrunbook: already stopped (no data directory)'; exit 0; fi`,
      `${ctl} status -D '${SPACED}' >/dev/null; s=$?`,
      `if [ $s = 3 ]; then echo 'pgrunbook: already stopped'; exit 0; fi`,
      `if [ $s != 0 ]; then echo "pgrunbook: pg_ctl status says $s for ${SPACED}" >&2; exit 1; fi`,
      `${ctl} stop -D '${SPACED}' -m fast -w -t 300`,
    ]);
    // The undo starts it again, logging next to the data directory.
    expect(plan.undo!.action).toBe('start it again (if this step stopped it)');
    const undo = unwrap(commands(plan.undo!.ops)[0]!).script.split('\n');
    expect(undo.at(-1)).toBe(
      `${ctl} start -D '${SPACED}' -w -t 300 -l '/var/lib/pg data/15/pg_ctl-main.log'`,
    );
    expect(undo[1]).toBe(`if [ $s = 0 ]; then echo 'pgrunbook: already running'; exit 0; fi`);
    expect(isMutating(pgCtl, { action: 'stop' })).toBe(true);
  });

  it('start: bin_dir, log file, options and timeout as given; its undo is a fast stop', () => {
    const h = host({ vars: { pgdata: '/d/main', pg_bin_dir: '/opt/pg/13/bin' } });
    const plan = pgCtl.plan(ctxOf(h), {
      action: 'start',
      bin_dir: '/opt/pg 15/bin',
      mode: 'immediate',
      timeout: 30,
      log_file: '/var/log/pg.log',
      options: "-c config_file='/etc/pg/post gresql.conf'",
      run_as: 'pgx',
    });
    const w = unwrap(commands(plan.ops)[0]!);
    expect(w.tool).toBe('sudo -n');
    expect(w.user).toBe('pgx');
    const lines = w.script.split('\n');
    expect(lines).toHaveLength(4); // no "no data directory" shortcut for a start
    expect(lines[3]).toBe(
      `'/opt/pg 15/bin/pg_ctl' start -D /d/main -w -t 30 -l /var/log/pg.log -o '-c config_file='\\''/etc/pg/post gresql.conf'\\'''`,
    );
    // sh hands pg_ctl the options as one word.
    expect(argvOf(lines[3]!).slice(-2)).toEqual(['-o', "-c config_file='/etc/pg/post gresql.conf'"]);
    expect(plan.undo!.action).toBe('stop it again (if this step started it)');
    expect(unwrap(commands(plan.undo!.ops)[0]!).script.split('\n').at(-1)).toBe(
      `'/opt/pg 15/bin/pg_ctl' stop -D /d/main -m fast -w -t 30`,
    );
  });

  it('the host var pg_bin_dir is used when bin_dir is not given', () => {
    const h = host({ vars: { pgdata: '/d/main', pg_bin_dir: '/opt/pg/13/bin' } });
    const s = unwrap(commands(pgCtl.plan(ctxOf(h), { action: 'stop' }).ops)[0]!).script;
    expect(s).toContain('/opt/pg/13/bin/pg_ctl stop -D /d/main -m fast -w -t 300');
  });

  it('no data_dir and no host var pgdata: an error naming the host', () => {
    expect(() => pgCtl.plan(ctxOf(host()), { action: 'stop' })).toThrow(StepFailure);
    expect(() => pgCtl.plan(ctxOf(host()), { action: 'stop' })).toThrow(
      'pg.ctl: data_dir not given and host var pgdata not set for db1',
    );
  });

  it('undoPlan: the opposite action only if this step acted', () => {
    const h = host({ vars: { pgdata: '/d/main' } });
    const out = { action: 'stop', data_dir: '/d/main', at: '', at_ms: 0, seconds: 1 };
    expect(pgCtl.undoPlan!(ctxOf(h), { action: 'stop' }, { ...out, changed: false })).toEqual({
      action: 'nothing: it was already stopped',
      ops: [],
    });
    const u = pgCtl.undoPlan!(ctxOf(h), { action: 'stop', mode: 'smart' }, { ...out, changed: true });
    expect(u!.action).toBe('start PostgreSQL in /d/main again');
    expect(unwrap(commands(u!.ops)[0]!).script).toContain('pg_ctl" start -D /d/main');
    expect(
      pgCtl.undoPlan!(ctxOf(h), { action: 'start' }, { ...out, action: 'start', changed: false })!.action,
    ).toBe('nothing: it was already running');
  });

  describe('run against a fake pg_ctl', () => {
    /** A bin dir whose pg_ctl records its calls and answers `status` from a file. */
    function fake(state: 'running' | 'stopped' | 'foreign') {
      const d = tmp();
      const data = join(d, 'data dir');
      mkdirSync(data);
      writeFileSync(join(data, 'PG_VERSION'), '15\n');
      mkdirSync(join(d, 'bin'));
      const code = { running: 0, stopped: 3, foreign: 4 }[state];
      writeFileSync(join(d, 'status'), String(code));
      exe(
        join(d, 'bin', 'pg_ctl'),
        `echo "$*" >> '${d}/calls'
case "$1" in
  status) exit $(cat '${d}/status');;
  stop) echo 3 > '${d}/status';;
  start) echo 0 > '${d}/status';;
esac`,
      );
      const calls = () =>
        existsSync(join(d, 'calls')) ? readFileSync(join(d, 'calls'), 'utf8').trim().split('\n') : [];
      return { d, data, bin: join(d, 'bin'), calls };
    }

    it('stop on a running server stops it; its undo starts it again', async () => {
      const f = fake('running');
      const ctx = applyCtx(localMe({ pgdata: f.data }));
      const p = { action: 'stop' as const, bin_dir: f.bin, timeout: 5 };
      const out = await pgCtl.apply(ctx, p);
      expect(out).toMatchObject({ action: 'stop', data_dir: f.data, changed: true });
      expect(f.calls()).toEqual([`status -D ${f.data}`, `stop -D ${f.data} -m fast -w -t 5`]);
      await pgCtl.undo!(ctx, p, out);
      expect(f.calls().slice(2)).toEqual([
        `status -D ${f.data}`,
        `start -D ${f.data} -w -t 5 -l ${f.d}/pg_ctl-data dir.log`,
      ]);
    });

    it('stop on a stopped server changes nothing, and its undo does not start it', async () => {
      const f = fake('stopped');
      const ctx = applyCtx(localMe({ pgdata: f.data }));
      const p = { action: 'stop' as const, bin_dir: f.bin };
      const out = await pgCtl.apply(ctx, p);
      expect(out.changed).toBe(false);
      expect(ctx.logs).toEqual(['already stopped']);
      await pgCtl.undo!(ctx, p, out);
      expect(f.calls()).toEqual([`status -D ${f.data}`]);
    });

    it('stop with no data directory at all is "already stopped"; start there is an error', async () => {
      const f = fake('stopped');
      const gone = join(f.d, 'nothing');
      const ctx = applyCtx(localMe());
      const out = await pgCtl.apply(ctx, { action: 'stop', data_dir: gone, bin_dir: f.bin });
      expect(out.changed).toBe(false);
      writeFileSync(join(f.d, 'status'), '4');
      await expect(pgCtl.apply(ctx, { action: 'start', data_dir: gone, bin_dir: f.bin })).rejects.toThrow(
        /pg_ctl start failed \(exit 1\): pgrunbook: pg_ctl status says 4 for/,
      );
    });

    it('a status pg_ctl does not know (4) is an error, not "stopped"', async () => {
      const f = fake('foreign');
      const ctx = applyCtx(localMe({ pgdata: f.data }));
      await expect(pgCtl.apply(ctx, { action: 'stop', bin_dir: f.bin })).rejects.toThrow(
        `pgrunbook: pg_ctl status says 4 for ${f.data}`,
      );
      expect(f.calls()).toEqual([`status -D ${f.data}`]);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('pg.initdb', () => {
  const P = {
    bin_dir: '/usr/lib/postgresql/16/bin',
    data_dir: "/srv/it's new/16/main",
    username: 'gitlab-psql',
    encoding: 'UTF8',
    lc_collate: 'en_US.UTF-8',
    lc_ctype: 'C.UTF-8',
    checksums: true,
  };

  it('the exact initdb argv as the server user, guarded by an emptiness check; paths with quotes', () => {
    const h = host({ become: 'sudo', vars: { pgdata: '/var/lib/postgresql/13/main' } });
    const plan = initdb.plan(ctxOf(h), { ...P, wal_segsize_mb: 64, options: ['--auth-local=peer', '-k'] });
    expect(plan.action).toBe(`initdb ${P.data_dir}`);
    const w = unwrap(commands(plan.ops)[0]!);
    expect([w.tool, w.user]).toEqual(['sudo -n', 'postgres']);
    const lines = w.script.split('\n');
    expect(lines[0]).toBe(
      `if [ -n "$(ls -A '/srv/it'\\''s new/16/main' 2>/dev/null)" ]; then echo 'pgrunbook: /srv/its new/16/main exists and is not empty' >&2; exit 3; fi`,
    );
    expect(lines[1]).toBe(`mkdir -p -m 0700 '/srv/it'\\''s new/16/main' || exit 1`);
    expect(argvOf(lines[2]!)).toEqual([
      '/usr/lib/postgresql/16/bin/initdb',
      '-D',
      "/srv/it's new/16/main",
      '-U',
      'gitlab-psql',
      '--encoding=UTF8',
      '--lc-collate=en_US.UTF-8',
      '--lc-ctype=C.UTF-8',
      '--data-checksums',
      '--wal-segsize=64',
      '--auth-local=peer',
      '-k',
    ]);
    expect(lines[3]).toBe(`cat '/srv/it'\\''s new/16/main/PG_VERSION'`);
  });

  it('without checksums or a WAL segment size, neither flag; run_as and pg_os_user pick the user', () => {
    const h = host({ vars: { pg_os_user: 'gitlab-psql' } });
    const a = argvOf(
      unwrap(commands(initdb.plan(ctxOf(h), { ...P, checksums: false }).ops)[0]!).script.split('\n')[2]!,
    );
    expect(a).not.toContain('--data-checksums');
    expect(a.some((x) => x.startsWith('--wal-segsize'))).toBe(false);
    expect(unwrap(commands(initdb.plan(ctxOf(h), P).ops)[0]!).user).toBe('gitlab-psql');
    expect(unwrap(commands(initdb.plan(ctxOf(h), { ...P, run_as: 'x' }).ops)[0]!).user).toBe('x');
  });

  it('its undo removes the directory only if initdb made it and no server runs there', () => {
    const plan = initdb.plan(ctxOf(host()), { ...P, data_dir: '/srv/new 16' });
    expect(plan.undo!.action).toBe('remove /srv/new 16');
    expect(unwrap(commands(plan.undo!.ops)[0]!).script.split('\n')).toEqual([
      `[ -d '/srv/new 16' ] || exit 0`,
      `[ -f '/srv/new 16/PG_VERSION' ] || { echo 'pgrunbook: no PG_VERSION there: not removing it' >&2; exit 1; }`,
      `[ ! -e '/srv/new 16/postmaster.pid' ] || { echo 'pgrunbook: postmaster.pid there (a server runs or crashed): not removing it' >&2; exit 1; }`,
      `rm -rf -- '/srv/new 16'`,
    ]);
  });

  it('refuses the host var pgdata (the running cluster) as data_dir, in plan and apply', async () => {
    const h = host({ vars: { pgdata: '/var/lib/postgresql/13/main' } });
    const p = { ...P, data_dir: '/var/lib/postgresql/13/main' };
    expect(() => initdb.plan(ctxOf(h), p)).toThrow(
      "pg.initdb: /var/lib/postgresql/13/main is the host's pgdata (the running cluster's data directory)",
    );
    await expect(initdb.apply(applyCtx(h), p)).rejects.toThrow(StepFailure);
  });

  describe('run against a fake initdb', () => {
    function fake() {
      const d = tmp();
      mkdirSync(join(d, 'bin'));
      exe(join(d, 'bin', 'initdb'), `echo "$*" > '${d}/args'\necho 16 > "$2/PG_VERSION"`);
      return d;
    }

    it('creates the directory, reports PG_VERSION; the undo removes it', async () => {
      const d = fake();
      const data = join(d, 'new data');
      const ctx = applyCtx(localMe());
      const p = { ...P, bin_dir: join(d, 'bin'), data_dir: data };
      await expect(initdb.apply(ctx, p)).resolves.toEqual({ data_dir: data, pg_version: '16' });
      expect(readFileSync(join(d, 'args'), 'utf8')).toBe(
        `-D ${data} -U gitlab-psql --encoding=UTF8 --lc-collate=en_US.UTF-8 --lc-ctype=C.UTF-8 --data-checksums\n`,
      );
      expect(ctx.logs).toEqual([`initialised PostgreSQL 16 in ${data}`]);
      await initdb.undo!(ctx, p, { data_dir: data, pg_version: '16' });
      expect(existsSync(data)).toBe(false);
    });

    it('a non-empty directory is refused with a clear message; the undo refuses one without PG_VERSION', async () => {
      const d = fake();
      const data = join(d, 'busy');
      mkdirSync(data);
      writeFileSync(join(data, 'precious'), 'x');
      const ctx = applyCtx(localMe());
      const p = { ...P, bin_dir: join(d, 'bin'), data_dir: data };
      await expect(initdb.apply(ctx, p)).rejects.toThrow(
        `${data} exists and is not empty: remove it, or choose another new data directory`,
      );
      await expect(initdb.undo!(ctx, p, { data_dir: data, pg_version: '' })).rejects.toThrow(
        'no PG_VERSION there: not removing it',
      );
      writeFileSync(join(data, 'PG_VERSION'), '16');
      writeFileSync(join(data, 'postmaster.pid'), '1');
      await expect(initdb.undo!(ctx, p, { data_dir: data, pg_version: '' })).rejects.toThrow(
        'postmaster.pid there (a server runs or crashed): not removing it',
      );
      expect(existsSync(join(data, 'precious'))).toBe(true);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('pg.upgrade', () => {
  const P = {
    old_bin_dir: '/usr/lib/postgresql/13/bin',
    new_bin_dir: '/usr/lib/postgresql/15/bin',
    old_data_dir: '/var/lib/postgresql/13/main',
    new_data_dir: '/var/lib/postgresql/15/main',
    username: 'gitlab-psql',
  };

  it('link mode by default: the exact pg_upgrade argv, run in the new directory’s parent', () => {
    const h = host({ become: 'sudo', pg: { port: 5433 } as InventoryHost['pg'] });
    const plan = upgrade.plan(ctxOf(h), P);
    expect(plan.action).toBe('pg_upgrade link /var/lib/postgresql/13/main → /var/lib/postgresql/15/main');
    const w = unwrap(commands(plan.ops)[0]!);
    expect([w.tool, w.user]).toEqual(['sudo -n', 'postgres']);
    const [cd, cmd] = w.script.split('\n');
    expect(cd).toBe('cd /var/lib/postgresql/15 || exit 1');
    expect(argvOf(cmd!)).toEqual([
      '/usr/lib/postgresql/15/bin/pg_upgrade',
      '--old-bindir=/usr/lib/postgresql/13/bin',
      '--new-bindir=/usr/lib/postgresql/15/bin',
      '--old-datadir=/var/lib/postgresql/13/main',
      '--new-datadir=/var/lib/postgresql/15/main',
      '--username=gitlab-psql',
      '--old-port=5433',
      '--new-port=50432',
      '--socketdir=/var/run/postgresql',
      '--jobs=1',
      '--link',
    ]);
    expect(isMutating(upgrade, P)).toBe(true);
  });

  it('every option lands as one word; paths with spaces are quoted; port 5432 without pg settings', () => {
    const h = host({ vars: { pg_socket_dir: '/run/pg sock', pg_os_user: 'gitlab-psql' } });
    const plan = upgrade.plan(ctxOf(h), {
      ...P,
      new_data_dir: '/srv/pg 15/main',
      mode: 'clone',
      jobs: 8,
      new_port: 6000,
      old_options: "-c config_file='/etc/pg/13/main/postgresql.conf'",
      new_options: '-c timezone=UTC',
      work_dir: '/tmp/up grade',
    });
    expect(plan.action).toBe('pg_upgrade clone /var/lib/postgresql/13/main → /srv/pg 15/main');
    const w = unwrap(commands(plan.ops)[0]!);
    expect(w.user).toBe('gitlab-psql');
    const [cd, cmd] = w.script.split('\n');
    expect(cd).toBe(`cd '/tmp/up grade' || exit 1`);
    expect(argvOf(cmd!)).toEqual([
      '/usr/lib/postgresql/15/bin/pg_upgrade',
      '--old-bindir=/usr/lib/postgresql/13/bin',
      '--new-bindir=/usr/lib/postgresql/15/bin',
      '--old-datadir=/var/lib/postgresql/13/main',
      '--new-datadir=/srv/pg 15/main',
      '--username=gitlab-psql',
      '--old-port=5432',
      '--new-port=6000',
      '--socketdir=/run/pg sock',
      '--jobs=8',
      '--clone',
      "--old-options=-c config_file='/etc/pg/13/main/postgresql.conf'",
      '--new-options=-c timezone=UTC',
    ]);
    // Clone and copy leave the old cluster alone: no undo.
    expect(plan.undo).toBeUndefined();
    const copy = upgrade.plan(ctxOf(h), { ...P, mode: 'copy' });
    expect(argvOf(unwrap(commands(copy.ops)[0]!).script.split('\n')[1]!)).not.toEqual(
      expect.arrayContaining(['--link']),
    );
    expect(copy.undo).toBeUndefined();
  });

  it('check mode: --check, not mutating, no undo, and says it changes nothing', () => {
    const plan = upgrade.plan(ctxOf(host()), { ...P, check: true });
    expect(plan.action).toBe('pg_upgrade --check (changes nothing)');
    expect(plan.undo).toBeUndefined();
    expect(argvOf(unwrap(commands(plan.ops)[0]!).script.split('\n')[1]!).slice(-2)).toEqual([
      '--link',
      '--check',
    ]);
    expect(isMutating(upgrade, { ...P, check: true })).toBe(false);
    expect(isMutating(upgrade, { ...P, check: false })).toBe(true);
  });

  it('the undo puts pg_control back unless the new cluster has run; undoPlan names the real checkpoint', () => {
    const plan = upgrade.plan(ctxOf(host()), P);
    expect(plan.undo!.action).toBe(
      'put the old cluster back (global/pg_control.old → pg_control) unless the new one has run',
    );
    const out = {
      check: false,
      mode: 'link',
      seconds: 1,
      old_data_dir: P.old_data_dir,
      new_data_dir: P.new_data_dir,
      new_checkpoint_lsn: '0/5000028',
      output: '',
    };
    const u = upgrade.undoPlan!(ctxOf(host()), P, out)!;
    const s = unwrap(commands(u.ops)[0]!).script;
    expect(s).toContain(`[ "$now" != 0/5000028 ]`);
    expect(s).toContain(
      'mv -- /var/lib/postgresql/13/main/global/pg_control.old /var/lib/postgresql/13/main/global/pg_control',
    );
    expect(upgrade.undoPlan!(ctxOf(host()), P, { ...out, check: true })).toEqual({
      action: 'nothing: the old cluster was not touched',
      ops: [],
    });
    expect(upgrade.undoPlan!(ctxOf(host()), P, { ...out, mode: 'copy' })!.ops).toEqual([]);
  });

  describe('run against fake pg_upgrade and pg_controldata', () => {
    /**
     * old/global/pg_control, new/, and a bin dir: pg_upgrade renames pg_control to .old (as --link
     * does) and exits with the code in `rc`; pg_controldata prints the checkpoint in `lsn`.
     */
    function fake(rc = 0) {
      const d = tmp();
      const old = join(d, 'old data');
      const nu = join(d, 'new data');
      mkdirSync(join(old, 'global'), { recursive: true });
      writeFileSync(join(old, 'global', 'pg_control'), 'old control');
      mkdirSync(nu);
      const bin = join(d, 'bin');
      mkdirSync(bin);
      writeFileSync(join(d, 'lsn'), '0/5000028');
      exe(
        join(bin, 'pg_upgrade'),
        `pwd > '${d}/cwd'; printf '%s\\n' "$@" > '${d}/args'
case "$*" in *--check*) echo 'Clusters are compatible'; exit ${rc};; esac
mv '${old}/global/pg_control' '${old}/global/pg_control.old'
echo 'Upgrade Complete'; exit ${rc}`,
      );
      exe(
        join(bin, 'pg_controldata'),
        `echo 'pg_control version number:            1300'\necho "Latest checkpoint location:           $(cat '${d}/lsn')"`,
      );
      const p = { ...P, old_bin_dir: bin, new_bin_dir: bin, old_data_dir: old, new_data_dir: nu };
      const control = () => ({
        live: existsSync(join(old, 'global', 'pg_control')),
        old: existsSync(join(old, 'global', 'pg_control.old')),
      });
      return { d, p, control };
    }

    it('apply records the new checkpoint; the undo renames pg_control.old back while it has not moved', async () => {
      const f = fake();
      const ctx = applyCtx(localMe());
      const out = await upgrade.apply(ctx, f.p);
      expect(out).toMatchObject({ check: false, mode: 'link', new_checkpoint_lsn: '0/5000028' });
      expect(out.output).toBe('Upgrade Complete');
      expect(readFileSync(join(f.d, 'cwd'), 'utf8').trim()).toBe(f.d);
      expect(f.control()).toEqual({ live: false, old: true });
      await upgrade.undo!(ctx, f.p, out);
      expect(f.control()).toEqual({ live: true, old: false });
      expect(ctx.logs.at(-1)).toBe('pgrunbook: renamed pg_control.old back');
    });

    it('the undo refuses once the new cluster’s checkpoint moved, or while it has a postmaster.pid', async () => {
      const f = fake();
      const ctx = applyCtx(localMe());
      const out = await upgrade.apply(ctx, f.p);
      writeFileSync(join(f.d, 'lsn'), '0/6000060');
      await expect(upgrade.undo!(ctx, f.p, out)).rejects.toThrow(
        'the new cluster has run since pg_upgrade (checkpoint 0/5000028 → 0/6000060)',
      );
      expect(f.control()).toEqual({ live: false, old: true });
      writeFileSync(join(f.d, 'lsn'), '0/5000028');
      writeFileSync(join(f.p.new_data_dir, 'postmaster.pid'), '1');
      await expect(upgrade.undo!(ctx, f.p, out)).rejects.toThrow('the new cluster runs (or crashed)');
      expect(f.control()).toEqual({ live: false, old: true });
    });

    it('a failed link-mode pg_upgrade puts pg_control back itself before failing', async () => {
      const f = fake(1);
      const ctx = applyCtx(localMe());
      await expect(upgrade.apply(ctx, f.p)).rejects.toThrow(
        /pg_upgrade failed \(exit 1\):\nUpgrade Complete\npgrunbook: renamed pg_control.old back/,
      );
      expect(f.control()).toEqual({ live: true, old: false });
    });

    it('check mode: --check only, nothing renamed, no checkpoint read; the undo does nothing', async () => {
      const f = fake();
      const ctx = applyCtx(localMe());
      const out = await upgrade.apply(ctx, { ...f.p, check: true });
      expect(out).toMatchObject({ check: true, new_checkpoint_lsn: '', output: 'Clusters are compatible' });
      expect(readFileSync(join(f.d, 'args'), 'utf8')).toContain('--check\n');
      expect(f.control()).toEqual({ live: true, old: false });
      await upgrade.undo!(ctx, { ...f.p, check: true }, out);
      expect(f.control()).toEqual({ live: true, old: false });
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('pg.sync_replicas', () => {
  const leader = (o: Partial<InventoryHost> = {}) =>
    host({ vars: { pgdata: '/var/opt/pg/data', pgdata_new: '/var/opt/pg/data15' }, ...o });
  const replica = (name: string, ip: string, vars: Record<string, unknown> = {}) =>
    host({
      name,
      ssh: { host: ip, user: 'root' } as InventoryHost['ssh'],
      vars: { pgdata: '/var/opt/pg/data', pgdata_new: '/var/opt/pg/data15', ...vars },
    });
  const peers = { db2: replica('db2', '10.0.0.2'), db3: replica('db3', '10.0.0.3') };
  const RSYNC = 'rsync --archive --delete --hard-links --size-only --no-inc-recursive';
  const KEEP_LINKS = "--exclude='/data/pg_tblspc/*' --exclude='/data15/pg_tblspc/*'";

  it('one script per replica: old and new directories in one rsync, then each tablespace into the replica’s own location', () => {
    const plan = syncReplicas.plan(ctxOf(leader(), peers), { replicas: ['db2', 'db3'] });
    expect(plan.action).toBe('rsync 2 replica(s) from this leader');
    expect(plan.undo).toBeUndefined();
    const [a, b] = commands(plan.ops);
    expect(a!.split('\n')).toEqual([
      'set -e',
      `${RSYNC} -e 'ssh -o BatchMode=yes' ${KEEP_LINKS} /var/opt/pg/data /var/opt/pg/data15 root@10.0.0.2:/var/opt/pg`,
      // No tablespace on the leader: done, without the two ssh round trips below.
      'has=',
      `for l in /var/opt/pg/data/pg_tblspc/*; do if [ -L "$l" ]; then has=1; fi; done`,
      '[ -n "$has" ] || exit 0',
      `sq() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\\\\\''/g")"; }`,
      `map=$(ssh -o BatchMode=yes root@10.0.0.2 'cd /var/opt/pg/data/pg_tblspc && for l in *; do if [ -L "$l" ]; then printf '\\''%s %s\\n'\\'' "$l" "$(readlink "$l")"; fi; done')`,
      'o=$(cat /var/opt/pg/data/PG_VERSION); n=$(cat /var/opt/pg/data15/PG_VERSION); links=:',
      'for l in /var/opt/pg/data/pg_tblspc/*; do',
      '  [ -L "$l" ] || continue; oid=$(basename "$l"); t=$(readlink "$l")',
      `  rt=$(printf '%s\\n' "$map" | sed -n "s/^$oid //p")`,
      `  [ -n "$rt" ] || { echo 'db2 has no link for tablespace' "$oid" 'in /var/opt/pg/data/pg_tblspc: it does not match the leader' >&2; exit 1; }`,
      `  ${RSYNC} -e 'ssh -o BatchMode=yes' "$t"/PG_"$o"_* "$t"/PG_"$n"_* root@10.0.0.2:"$rt"`,
      `  links="$links && ln -sfn -- $(sq "$rt") $(sq /var/opt/pg/data15/pg_tblspc/"$oid")"`,
      'done',
      `ssh -o BatchMode=yes root@10.0.0.2 "$links"`,
    ]);
    expect(b!.split('\n')[1]).toBe(
      `${RSYNC} -e 'ssh -o BatchMode=yes' ${KEEP_LINKS} /var/opt/pg/data /var/opt/pg/data15 root@10.0.0.3:/var/opt/pg`,
    );
    expect(isMutating(syncReplicas, { replicas: ['db2'] })).toBe(true);
  });

  it('a replica on the leader’s own host must keep its tablespaces elsewhere: the script refuses the same location', () => {
    const same = {
      db2: replica('db2', '10.0.0.1', { pgdata: '/srv/m2/data', pgdata_new: '/srv/m2/data15' }),
    };
    const onHost = syncReplicas.plan(
      ctxOf(leader({ ssh: { host: '10.0.0.1', user: 'root' } as InventoryHost['ssh'] }), same),
      { replicas: ['db2'] },
    );
    expect(commands(onHost.ops)[0]).toContain(
      `  [ "$rt" != "$t" ] || { echo 'db2 keeps tablespace' "$oid" 'in the same directory as this leader on the same host:' "$t" >&2; exit 1; }`,
    );
    // On another host the same path is the documented layout, not a conflict.
    expect(commands(syncReplicas.plan(ctxOf(leader(), peers), { replicas: ['db2'] }).ops)[0]).not.toContain(
      'in the same directory as this leader',
    );
  });

  it('rsync_host/rsync_user, the rsync_ssh host var and the ssh param pick the remote', () => {
    const p = {
      db2: replica('db2', '10.0.0.2', { rsync_host: '192.168.1.2', rsync_user: 'sync er' }),
    };
    const viaVar = syncReplicas.plan(
      ctxOf(leader({ vars: { ...leader().vars, rsync_ssh: 'ssh -p 2222' } }), p),
      {
        replicas: ['db2'],
      },
    );
    expect(argvOf(commands(viaVar.ops)[0]!.split('\n')[1]!)).toEqual([
      ...RSYNC.split(' '),
      '-e',
      'ssh -p 2222',
      '--exclude=/data/pg_tblspc/*',
      '--exclude=/data15/pg_tblspc/*',
      '/var/opt/pg/data',
      '/var/opt/pg/data15',
      'sync er@192.168.1.2:/var/opt/pg',
    ]);
    const viaParam = syncReplicas.plan(ctxOf(leader(), p), {
      replicas: ['db2'],
      ssh: 'ssh -i /root/.ssh/id upgrade',
    });
    expect(argvOf(commands(viaParam.ops)[0]!.split('\n')[1]!).slice(6, 8)).toEqual([
      '-e',
      'ssh -i /root/.ssh/id upgrade',
    ]);
  });

  it('explicit data directories with spaces are quoted and recreated by name in the replica’s parent', () => {
    const p = {
      db2: replica('db2', '10.0.0.2', { pgdata: '/srv/pg x/old', pgdata_new: '/srv/pg x/new 15' }),
    };
    const plan = syncReplicas.plan(ctxOf(leader(), p), {
      replicas: ['db2'],
      old_data_dir: '/data/a b/old',
      new_data_dir: '/data/a b/new 15',
    });
    expect(argvOf(commands(plan.ops)[0]!.split('\n')[1]!).slice(-3)).toEqual([
      '/data/a b/old',
      '/data/a b/new 15',
      'root@10.0.0.2:/srv/pg x',
    ]);
  });

  it('become wraps it for the login; run_as switches to that user', () => {
    const withBecome = syncReplicas.plan(ctxOf(leader({ become: 'sudo' }), peers), { replicas: ['db2'] });
    expect(unbecome(commands(withBecome.ops)[0]!)).toMatch(/^set -e\nrsync /);
    const asPg = syncReplicas.plan(ctxOf(leader({ become: 'sudo' }), peers), {
      replicas: ['db2'],
      run_as: 'gitlab-psql',
    });
    const w = unwrap(commands(asPg.ops)[0]!);
    expect([w.tool, w.user]).toEqual(['sudo -n', 'gitlab-psql']);
    expect(w.script).toMatch(/^set -e\nrsync /);
  });

  it('except leaves replicas out (unknown ones are not even looked up); all left out is a no-op', () => {
    const plan = syncReplicas.plan(ctxOf(leader(), peers), {
      replicas: ['db2', 'db3', 'gone'],
      except: ['db3', 'gone'],
    });
    expect(commands(plan.ops)).toHaveLength(1);
    expect(commands(plan.ops)[0]).toContain('root@10.0.0.2:');
    expect(syncReplicas.plan(ctxOf(leader(), peers), { replicas: ['db2'], except: ['db2'] })).toEqual({
      action: 'sync no replica',
      ops: [],
      noop: 'no replica to sync',
    });
    expect(syncReplicas.plan(ctxOf(leader(), peers), { replicas: [] }).noop).toBe('no replica to sync');
  });

  it.each([
    [
      'an unknown replica host',
      { db2: peers.db2 },
      ['db9'],
      'pg.sync_replicas: no host "db9" in the inventory',
    ],
    [
      'a replica without pgdata_new',
      { db2: host({ name: 'db2', vars: { pgdata: '/var/opt/pg/data' } }) },
      ['db2'],
      'pg.sync_replicas: host vars pgdata/pgdata_new not set for replica db2',
    ],
    [
      'a replica whose directories do not share a parent',
      { db2: replica('db2', '10.0.0.2', { pgdata_new: '/other/data15' }) },
      ['db2'],
      "pg.sync_replicas: replica db2 has pgdata /var/opt/pg/data and pgdata_new /other/data15; they must sit in one directory with the leader's names (data, data15)",
    ],
    [
      'a replica whose directory names differ from the leader’s',
      { db2: replica('db2', '10.0.0.2', { pgdata: '/var/opt/pg/main', pgdata_new: '/var/opt/pg/main15' }) },
      ['db2'],
      "pg.sync_replicas: replica db2 has pgdata /var/opt/pg/main and pgdata_new /var/opt/pg/main15; they must sit in one directory with the leader's names (data, data15)",
    ],
    [
      'a replica with no address (local, no rsync_host)',
      {
        db2: {
          name: 'db2',
          transport: 'local',
          vars: { pgdata: '/var/opt/pg/data', pgdata_new: '/var/opt/pg/data15' },
          groups: [],
        } as InventoryHost,
      },
      ['db2'],
      'pg.sync_replicas: no address for replica db2 (host var rsync_host or ssh.host)',
    ],
  ])('refuses %s', (_what, ps, replicas, message) => {
    expect(() => syncReplicas.plan(ctxOf(leader(), ps), { replicas })).toThrow(message);
  });

  it('refuses a leader without pgdata/pgdata_new', () => {
    expect(() => syncReplicas.plan(ctxOf(host(), peers), { replicas: ['db2'] })).toThrow(
      'pg.sync_replicas: old/new data directory not given and host vars pgdata/pgdata_new not set for db1',
    );
  });

  // With a trailing slash rsync would copy the directory's contents into the replica's parent,
  // and --delete would wipe everything else there: the step strips it.
  it('a trailing slash on the leader’s pgdata never reaches rsync as a source', () => {
    const l = leader({ vars: { pgdata: '/var/opt/pg/data/', pgdata_new: '/var/opt/pg/data15' } });
    let line: string;
    try {
      line = commands(syncReplicas.plan(ctxOf(l, peers), { replicas: ['db2'] }).ops)[0]!;
    } catch {
      return; // refusing the layout is fine too
    }
    const argv = argvOf(line.split('\n')[1]!);
    expect(argv.slice(-3, -1)).toEqual(['/var/opt/pg/data', '/var/opt/pg/data15']);
  });
});

// ---------------------------------------------------------------------------------------------

describe('patroni.edit_config: editPatroniYaml', () => {
  const YML = `# managed by pgrunbook tests
scope: main # the cluster
bootstrap:
  dcs:
    postgresql:
      parameters:
        wal_keep_segments: 10
        stats_temp_directory: /var/run/pg_stats
        max_connections: 200
postgresql:
  bin_dir: /usr/lib/postgresql/13/bin # before the upgrade
  data_dir: /var/lib/postgresql/13/main
  authentication:
    superuser:
      username: postgres
      password: "hunter2"
    replication:
      password: repl-secret
  parameters:
    # keep enough WAL for the replicas
    wal_keep_segments: 8
    stats_temp_directory: /var/run/pg_stats
    force_parallel_mode: "off"
restapi:
  authentication: { username: api, password: api-secret }
`;

  it('sets dotted keys, keeps comments, and carries parameters over to PostgreSQL 15', () => {
    const r = editPatroniYaml(YML, {
      set: {
        'postgresql.bin_dir': '/usr/lib/postgresql/15/bin',
        'postgresql.data_dir': '/var/lib/postgresql/15/main',
        scope: 'main',
      },
      parameters_for: 15,
      wal_segment_size_mb: 64,
    });
    expect(r.changes).toEqual([
      'postgresql.bin_dir: "/usr/lib/postgresql/13/bin" → "/usr/lib/postgresql/15/bin"',
      'postgresql.data_dir: "/var/lib/postgresql/13/main" → "/var/lib/postgresql/15/main"',
      'postgresql.parameters.wal_keep_segments: 8 → postgresql.parameters.wal_keep_size: 512MB',
      'postgresql.parameters.stats_temp_directory: removed (not a parameter in PostgreSQL 15+)',
      'bootstrap.dcs.postgresql.parameters.wal_keep_segments: 10 → bootstrap.dcs.postgresql.parameters.wal_keep_size: 640MB',
      'bootstrap.dcs.postgresql.parameters.stats_temp_directory: removed (not a parameter in PostgreSQL 15+)',
    ]);
    expect(r.text).toContain('# managed by pgrunbook tests\nscope: main # the cluster\n');
    expect(r.text).toContain('  bin_dir: /usr/lib/postgresql/15/bin # before the upgrade\n');
    expect(r.text).toContain('    # keep enough WAL for the replicas\n');
    expect(r.text).not.toMatch(/wal_keep_segments|stats_temp_directory/);
    // The renamed parameter is added at the end of its map.
    expect(r.text).toContain('        max_connections: 200\n        wal_keep_size: 640MB\n');
    // force_parallel_mode is a PostgreSQL 16 rename: untouched for 15.
    expect(r.text).toContain('    force_parallel_mode: "off"\n');
    // Secrets stay in the file as they were.
    expect(r.text).toContain('password: "hunter2"');
  });

  it('wal_keep_segments → wal_keep_size with 16 MB segments by default; a rename never overwrites', () => {
    const r = editPatroniYaml(
      'postgresql:\n  parameters:\n    wal_keep_segments: 8\nbootstrap:\n  dcs:\n    postgresql:\n      parameters:\n        wal_keep_segments: 4\n        wal_keep_size: 1GB\n',
      { parameters_for: 13 },
    );
    expect(r.changes).toEqual([
      'postgresql.parameters.wal_keep_segments: 8 → postgresql.parameters.wal_keep_size: 128MB',
      'bootstrap.dcs.postgresql.parameters.wal_keep_segments: removed (bootstrap.dcs.postgresql.parameters.wal_keep_size is already set)',
    ]);
    expect(r.text).toContain('wal_keep_size: 1GB');
  });

  it('only parameters removed up to the target major: 12 keeps all, 16 renames force_parallel_mode', () => {
    expect(editPatroniYaml(YML, { parameters_for: 12 })).toEqual({ text: YML, changes: [] });
    const r16 = editPatroniYaml(YML, { parameters_for: 16 });
    expect(r16.changes).toContain(
      'postgresql.parameters.force_parallel_mode: off → postgresql.parameters.debug_parallel_query: off',
    );
  });

  it('never shows a secret value in changes', () => {
    const r = editPatroniYaml(YML, {
      set: {
        'postgresql.authentication.superuser.password': 'n3w-pa55',
        'postgresql.authentication.replication.password': 'n3w-repl',
        'restapi.authentication.password': 'n3w-api',
        'etcd3.token': 'tok-123',
      },
    });
    expect(r.changes).toEqual([
      'postgresql.authentication.superuser.password: *** → ***',
      'postgresql.authentication.replication.password: *** → ***',
      'restapi.authentication.password: *** → ***',
      'etcd3.token: *** → ***',
    ]);
    const shown = r.changes.join('\n');
    for (const s of ['hunter2', 'repl-secret', 'api-secret', 'n3w-pa55', 'n3w-repl', 'n3w-api', 'tok-123'])
      expect(shown).not.toContain(s);
    expect(r.text).toContain('n3w-pa55');
    expect(r.text).toContain('token: tok-123');
  });

  it('an unchanged value is no change; a missing one shows (unset)', () => {
    const r = editPatroniYaml(YML, { set: { scope: 'main', 'postgresql.listen': '0.0.0.0:5432' } });
    expect(r.changes).toEqual(['postgresql.listen: (unset) → "0.0.0.0:5432"']);
  });

  it('a file that does not parse is an error', () => {
    expect(() => editPatroniYaml('a: [1\n', {})).toThrow(/patroni.yml does not parse/);
  });
});

describe('patroni.edit_config: plan', () => {
  const h = host({
    become: 'sudo',
    patroni: { config: '/etc/patroni/patroni.yml' } as InventoryHost['patroni'],
  });

  it('reads, notes what it sets (secrets as ***), writes atomically keeping the original; the undo puts it back', () => {
    const plan = editConfig.plan(ctxOf(h), {
      backup: '/etc/patroni/patroni.yml.pg13',
      set: {
        'postgresql.bin_dir': '/usr/lib/postgresql/15/bin',
        'postgresql.authentication.superuser.password': 'pw-1',
      },
      parameters_for: 15,
    });
    expect(plan.action).toBe(
      'edit /etc/patroni/patroni.yml (original kept as /etc/patroni/patroni.yml.pg13)',
    );
    expect(plan.ops.map((o) => (o.kind === 'note' ? o.text : o.kind))).toEqual([
      'command',
      'set postgresql.bin_dir: "/usr/lib/postgresql/15/bin"',
      'set postgresql.authentication.superuser.password: ***',
      'rewrite parameters PostgreSQL 15 removed or renamed (postgresql.parameters, bootstrap.dcs)',
      'the edited file is fed on stdin (not shown: patroni.yml holds passwords)',
      'command',
    ]);
    expect(JSON.stringify(plan)).not.toContain('pw-1');
    const [read, write] = commands(plan.ops).map(unbecome);
    expect(read).toBe('cat -- /etc/patroni/patroni.yml');
    expect(write!.split('\n')).toEqual([
      'set -e',
      "if [ -e /etc/patroni/patroni.yml.pg13 ]; then echo 'pgrunbook: /etc/patroni/patroni.yml.pg13 exists: an earlier edit kept its original there; move it away first' >&2; exit 3; fi",
      'cp -p -- /etc/patroni/patroni.yml /etc/patroni/patroni.yml.pg13',
      '(umask 077 && cat > /etc/patroni/patroni.yml.pgrunbook-tmp)',
      'chown --reference=/etc/patroni/patroni.yml /etc/patroni/patroni.yml.pgrunbook-tmp',
      'chmod --reference=/etc/patroni/patroni.yml /etc/patroni/patroni.yml.pgrunbook-tmp',
      'mv -f -- /etc/patroni/patroni.yml.pgrunbook-tmp /etc/patroni/patroni.yml',
      'sync -- /etc/patroni/patroni.yml',
    ]);
    expect(plan.undo!.action).toBe('put the original /etc/patroni/patroni.yml back');
    expect(unbecome(commands(plan.undo!.ops)[0]!)).toBe(
      'set -e\n[ -e /etc/patroni/patroni.yml.pg13 ] || exit 0\nmv -f -- /etc/patroni/patroni.yml.pg13 /etc/patroni/patroni.yml',
    );
  });

  it('path quoted when given; no path and no patroni.config is an error', () => {
    const plan = editConfig.plan(ctxOf(host()), { path: '/etc/my patroni.yml', backup: '/tmp/b' });
    expect(commands(plan.ops)[0]).toBe("cat -- '/etc/my patroni.yml'");
    expect(() => editConfig.plan(ctxOf(host()), { backup: '/tmp/b' })).toThrow(
      'patroni.edit_config: no path, and no patroni.config for db1 in the inventory',
    );
  });

  it('applied on a real file: edited with owner and mode kept, the original kept, the undo restores it', async () => {
    const d = tmp();
    const f = join(d, 'patroni.yml');
    writeFileSync(f, 'postgresql:\n  bin_dir: /old # c\n  parameters:\n    wal_keep_segments: 2\n', {
      mode: 0o640,
    });
    const ctx = applyCtx(localMe());
    const p = { path: f, backup: `${f}.orig`, set: { 'postgresql.bin_dir': '/new' }, parameters_for: 15 };
    const out = await editConfig.apply(ctx, p);
    expect(out.changes).toEqual([
      'postgresql.bin_dir: "/old" → "/new"',
      'postgresql.parameters.wal_keep_segments: 2 → postgresql.parameters.wal_keep_size: 32MB',
    ]);
    expect(readFileSync(f, 'utf8')).toBe(
      'postgresql:\n  bin_dir: /new # c\n  parameters:\n    wal_keep_size: 32MB\n',
    );
    expect(statSync(f).mode & 0o777).toBe(0o640);
    // A second edit refuses to overwrite the kept original.
    await expect(editConfig.apply(ctx, p)).rejects.toThrow(
      `${f}.orig exists: an earlier edit kept its original there; move it away first`,
    );
    await editConfig.undo!(ctx, p, out);
    expect(readFileSync(f, 'utf8')).toContain('wal_keep_segments: 2');
    expect(existsSync(`${f}.orig`)).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------

describe('backup.recover: plan', () => {
  const P = {
    from: '/backups/b1',
    data_dir: '/var/lib/postgresql/13/main',
    bin_dir: '/usr/lib/postgresql/13/bin',
    archive_dir: '/archive',
    wal_dirs: ['/var/lib/postgresql/13/main.broken/pg_wal'],
  };

  /** The pg_ctl start line's -o value, and the argv sh (inside pg_ctl) makes of it for postgres. */
  function serverArgs(line: string): string[] {
    const start = unwrap(line).script.split('\n')[0]!;
    const a = argvOf(start.slice(0, start.indexOf(' || {')));
    const opts = a[a.indexOf('-o') + 1]!;
    // pg_ctl starts the server as: /bin/sh -c 'exec "postgres" -D … OPTIONS < /dev/null >> log 2>&1'
    return argvOf(opts);
  }

  it('checks the manifest, copies as the login (through become), recovers as the server user', () => {
    const h = host({ become: 'sudo', vars: { pg_os_user: 'gitlab-psql' } });
    const plan = recover.plan(ctxOf(h), P);
    expect(plan.action).toBe(
      'restore the backup in /backups/b1 as /var/lib/postgresql/13/main, recovering to latest',
    );
    expect(plan.undo).toBeUndefined();
    expect(plan.ops[0]).toEqual({
      kind: 'note',
      text: "check /backups/b1/manifest.json is complete and the labels' sha256",
    });
    const [copy, rec] = commands(plan.ops);
    const c = unbecome(copy!).split('\n');
    expect(c[1]).toBe(
      "if [ -e /var/lib/postgresql/13/main ]; then echo 'pgrunbook: /var/lib/postgresql/13/main exists: move it aside first' >&2; exit 17; fi",
    );
    expect(c).toContain('cp /backups/b1/backup_label /var/lib/postgresql/13/main/backup_label');
    expect(c).toContain('touch /var/lib/postgresql/13/main/recovery.signal');
    expect(c.join('\n')).toContain('chown -R gitlab-psql: /var/lib/postgresql/13/main');
    const w = unwrap(rec!);
    expect([w.tool, w.user]).toEqual(['sudo -n', 'gitlab-psql']);
    const lines = w.script.split('\n');
    // It waits for the end of recovery (pg_ctl -w also returns for a server still recovering),
    // then stops cleanly and reads pg_control.
    expect(lines[1]).toContain('while [ -e /var/lib/postgresql/13/main/recovery.signal ]');
    expect(lines[1]).toContain('!= ready');
    expect(lines.slice(-2)).toEqual([
      '/usr/lib/postgresql/13/bin/pg_ctl stop -D /var/lib/postgresql/13/main -m fast -w || exit 1',
      'LC_ALL=C /usr/lib/postgresql/13/bin/pg_controldata -D /var/lib/postgresql/13/main',
    ]);
    expect(isMutating(recover, P)).toBe(true);
  });

  it('recovery settings on the command line: WAL dirs before the archive, promote, no TCP', () => {
    const plan = recover.plan(ctxOf(host()), P);
    expect(serverArgs(commands(plan.ops)[1]!)).toEqual([
      '-c',
      'restore_command=cp /var/lib/postgresql/13/main.broken/pg_wal/%f "%p" 2>/dev/null || cp /archive/%f "%p" 2>/dev/null',
      '-c',
      'recovery_target_timeline=current',
      '-c',
      'recovery_target_action=promote',
      '-c',
      'hot_standby=off',
      '-c',
      'archive_mode=off',
      '-c',
      'listen_addresses=',
      '-c',
      'unix_socket_directories=/var/lib/postgresql/13/main',
    ]);
    const immediate = recover.plan(ctxOf(host()), { ...P, target: 'immediate', wal_dirs: undefined });
    expect(immediate.action).toMatch(/recovering to immediate$/);
    const args = serverArgs(commands(immediate.ops)[1]!);
    expect(args).toContain('recovery_target=immediate');
    expect(args).toContain('recovery_target_timeline=current');
    expect(args[1]).toBe('restore_command=cp /archive/%f "%p" 2>/dev/null');
  });

  // pg_ctl hands -o to /bin/sh: each -c name=value must arrive as one word, whatever the paths hold.
  it('an archive directory with a space reaches the server as one restore_command', () => {
    const plan = recover.plan(ctxOf(host()), { ...P, archive_dir: '/srv/wal archive', wal_dirs: [] });
    expect(serverArgs(commands(plan.ops)[1]!).slice(0, 2)).toEqual([
      '-c',
      `restore_command=cp '/srv/wal archive'/%f "%p" 2>/dev/null`,
    ]);
  });
});
