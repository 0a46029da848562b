// What the planned steps declare they need on their hosts, as the preflight receives it: read
// from the rendered params, the parts resting on values only a run knows named as not checked.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { NeedRequest } from '../../../src/engine/model.js';
import { checkableNeeds } from '../../../src/engine/needs.js';
import { assumedGroups } from '../../../src/engine/patroni-groups.js';
import { formatProblem } from '../../../src/errors.js';
import { applyPatroniGroups } from '../../../src/inventory/dynamic-groups.js';
import { type Inventory, type InventoryHost, loadInventory } from '../../../src/inventory/inventory.js';
import { renderPlanText } from '../../../src/plan/render-text.js';
import type { Playbook } from '../../../src/playbook/model.js';
import { loadPlaybook } from '../../../src/playbook/validate.js';
import fsSnapshot from '../../../src/steps/fs/snapshot.js';
import { pgBinary } from '../../../src/steps/pg/binaries.js';
import syncReplicas from '../../../src/steps/pg/sync-replicas.js';
import upgrade from '../../../src/steps/pg/upgrade.js';
import { planOf } from '../helpers/plan.js';
import { ctxOf } from '../helpers/plan-context.js';

const root = (rel: string) => fileURLToPath(new URL(`../../../${rel}`, import.meta.url));

const host = (name: string, vars: Record<string, unknown> = {}): InventoryHost => ({
  name,
  transport: 'ssh',
  ssh: { host: `10.0.0.${name.slice(-1)}`, user: 'admin' } as InventoryHost['ssh'],
  vars: { pgdata: '/srv/pg/data', pgdata_new: '/srv/pg/data15', ...vars },
  groups: [],
});

describe('step declarations', () => {
  it('pg.sync_replicas needs rsync on the leader and on every replica it syncs, and ssh on the leader', () => {
    const peers = { db2: host('db2'), db3: host('db3') };
    const ctx = ctxOf(host('db1'), peers);
    const n = syncReplicas.needs!(ctx, { replicas: ['db2', 'db3'], except: ['db3'] });
    expect(n.binaries).toEqual([
      { name: 'rsync', package: 'rsync' },
      { name: 'ssh', package: 'openssh-client', param: undefined },
      { name: 'rsync', package: 'rsync', host: 'db2', param: 'replicas' },
    ]);
    // check: true only asks the replicas (ssh from the leader, rsync there).
    const c = syncReplicas.needs!(ctx, { replicas: ['db2'], check: true });
    expect(c.binaries?.map((b) => `${b.name}@${b.host ?? 'db1'}`)).toEqual(['ssh@db1', 'rsync@db2']);
  });

  it('fs.snapshot needs no rsync (tar stands in), but a writable destination with room for the databases', () => {
    const ctx = ctxOf(host('db1'));
    expect(fsSnapshot.needs!(ctx, { provider: 'copy', to: '/b/x.snap' })).toEqual({
      writable: [{ path: '/b/x.snap', room: 'databases', param: 'to' }],
    });
    // btrfs creates the snapshot in its parent, sharing blocks: no room estimate.
    expect(fsSnapshot.needs!(ctx, { provider: 'btrfs', to: '/b/x.snap' })).toEqual({
      writable: [{ path: '/b', param: 'to' }],
    });
  });

  it("PostgreSQL programs carry their major's Debian package", () => {
    expect(pgBinary('/usr/lib/postgresql/15/bin', 'pg_upgrade')).toEqual({
      name: '/usr/lib/postgresql/15/bin/pg_upgrade',
      package: 'postgresql-15',
      param: undefined,
    });
    expect(pgBinary('/opt/gitlab/embedded/postgresql/15/bin/', 'initdb', 'bin_dir')).toEqual({
      name: '/opt/gitlab/embedded/postgresql/15/bin/initdb',
      package: undefined,
      param: 'bin_dir',
    });
  });
});

describe('checkableNeeds', () => {
  const p = {
    old_bin_dir: '/usr/lib/postgresql/13/bin',
    new_bin_dir: '/usr/lib/postgresql/15/bin',
    old_data_dir: '/d/13',
    new_data_dir: '/d/15',
    username: 'postgres',
  };
  it('keeps what rests on known values', () => {
    const r = checkableNeeds(upgrade, ctxOf(host('db1')), p, new Set(['username']));
    expect(r.unchecked).toEqual([]);
    expect(r.needs?.binaries?.map((b) => b.name)).toEqual([
      '/usr/lib/postgresql/15/bin/pg_upgrade',
      '/usr/lib/postgresql/13/bin/pg_ctl',
    ]);
    // Its scripts and logs land in the new directory's parent, written as the server user.
    expect(r.needs?.writable).toEqual([{ path: '/d', user: 'postgres', param: 'new_data_dir' }]);
  });
  it('skips what rests on a value only a run knows, and says so', () => {
    const r = checkableNeeds(upgrade, ctxOf(host('db1')), p, new Set(['new_bin_dir']));
    expect(r.needs?.binaries?.map((b) => b.name)).toEqual(['/usr/lib/postgresql/13/bin/pg_ctl']);
    expect(r.unchecked).toEqual(['the binary in `new_bin_dir`: known only after apply']);
  });
  it('a step without a declaration needs nothing', () => {
    expect(checkableNeeds({ ...upgrade, needs: undefined }, ctxOf(host('db1')), p, new Set())).toEqual({
      unchecked: [],
    });
  });
});

describe('the plan hands the preflight what the upgrade playbook needs', () => {
  const inv = loadInventory(root('examples/gitlab-like/inventory.yml'));
  const inventory = inv.inventory as Inventory;
  applyPatroniGroups(inventory, assumedGroups(inventory, 'patroni-01-db-gprd'));
  const pb = loadPlaybook(root('playbooks/pg-major-upgrade.yml'), { inventory });
  expect(pb.problems.map(formatProblem)).toEqual([]);
  const needs: NeedRequest[] = [];
  const plan = planOf(pb.playbook as Playbook, inventory, { needs });

  it('rsync on the leader and each replica, located at the sync step, with its package', () => {
    const rsync = needs
      .filter((n) => n.title.startsWith('Sync the replicas'))
      .flatMap((n) =>
        (n.needs.binaries ?? []).filter((b) => b.name === 'rsync').map((b) => b.host ?? n.host),
      );
    expect(rsync).toEqual(['patroni-01-db-gprd', 'patroni-02-db-gprd', 'patroni-03-db-gprd']);
    const req = needs.find((n) => n.title.startsWith('Sync the replicas'))!;
    const problem = req.problem('x');
    const line = pb.playbook!.doc.text.split('\n')[problem.line - 1];
    expect(line).toContain('pg.sync_replicas:');
  });

  it('pg_upgrade of the new major, although the step also takes values known only after apply', () => {
    const bins = needs.flatMap((n) => (n.needs.binaries ?? []).map((b) => b.name));
    expect(bins).toContain('/opt/gitlab/embedded/postgresql/15/bin/pg_upgrade');
    expect(bins).toContain('/opt/gitlab/embedded/postgresql/15/bin/initdb');
  });

  it('the archive for the backup start; a `when` known only at run time is named as not checked', () => {
    expect(needs.filter((n) => n.needs.archive).map((n) => n.host)).toEqual(['patroni-01-db-gprd']);
    expect(plan.problems).toEqual([]);
  });

  it('an offline plan (no preflight) collects nothing and prints nothing new', () => {
    const offline = planOf(pb.playbook as Playbook, inventory);
    expect(renderPlanText(offline)).not.toContain('not checked before the run');
  });
});

describe('what a plan --check cannot check beforehand is named under the step', () => {
  it('a destination from a registered output, and a step behind a `when` on one', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const d = mkdtempSync(join(tmpdir(), 'pgrb-needs-'));
    writeFileSync(join(d, 'inv.yml'), 'hosts:\n  db1: { transport: local }\n');
    writeFileSync(
      join(d, 'pb.yml'),
      `- name: p
  hosts: db1
  steps:
    - id: where
      shell: echo /b
    - name: copy to a place known after apply
      fs.snapshot: { provider: copy, source: /d, to: "{{ where.stdout }}" }
    - name: copy behind a when
      when: where.stdout != ''
      fs.snapshot: { provider: copy, source: /d, to: /b/x }
    - name: copy to a known place
      fs.snapshot: { provider: copy, source: /d, to: /b/y }
`,
    );
    const inventory = loadInventory(join(d, 'inv.yml')).inventory as Inventory;
    const pb = loadPlaybook(join(d, 'pb.yml'), { inventory });
    expect(pb.problems.map(formatProblem)).toEqual([]);
    const needs: NeedRequest[] = [];
    const plan = planOf(pb.playbook as Playbook, inventory, { needs, facts: {} });
    expect(needs.flatMap((n) => n.needs.writable ?? []).map((w) => w.path)).toEqual(['/b/y']);
    // The source is known in both: it is paired with the server (the destination is not needed).
    expect(needs.flatMap((n) => n.needs.pairing ?? []).map((x) => x.dir)).toEqual(['/d', '/d']);
    const text = renderPlanText(plan);
    expect(text).toContain('not checked before the run: the destination in `to`: known only after apply');
    expect(text).toContain(
      'not checked before the run: what fs.snapshot needs on the host: runs only if `when` holds, known after apply',
    );
  });
});
