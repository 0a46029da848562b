// Saved plans on a real etcd + two-member Patroni cluster (PostgreSQL 15): `plan --check --out`
// asks the leader and the server versions; `run --plan` runs exactly that plan, and refuses
// (exit 2, nothing run) after a one-character edit of the playbook, a changed -e, or a switchover.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { httpRequest, type PatroniCluster } from '../../tools/testenv/index.js';
import { runCli, workdir } from './cli.js';
import { usePatroniCluster } from './patroni-cluster.js';

let cluster: PatroniCluster;

usePatroniCluster((lab) => {
  ({ cluster } = lab);
});

const inventory = () =>
  `hosts:\n${cluster.members
    .map(
      (m) =>
        `  ${m.name}: { transport: local, patroni: { url: "${m.restUrl}", member: ${m.name} }, pg: { host: ${m.socketDir}, port: ${m.pgPort}, user: postgres, sslmode: disable } }`,
    )
    .join('\n')}\n`;

// The leader writes a marker named by -e tag: what ran, where, is on disk to check.
const PLAYBOOK = `- name: on the leader
  hosts: patroni_leader
  steps:
    - shell: "echo {{ host.name }} > marker-{{ tag }}"
`;

async function switchoverTo(candidate: string): Promise<void> {
  const leader = await cluster.leader();
  const r = await httpRequest(
    'POST',
    `${cluster.members[0]!.restUrl}/switchover`,
    { leader, candidate },
    30_000,
  );
  expect(r.status, r.body).toBe(200);
  const t0 = Date.now();
  while ((await cluster.leader()) !== candidate) {
    if (Date.now() - t0 > 60_000) throw new Error(`${candidate} did not take over within 60 s`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

describe('plan --out and run --plan', () => {
  it('runs the saved plan as planned, and refuses once the playbook, -e or the leader changed', async () => {
    const leader = await cluster.leader();
    const cwd = workdir({ 'inv.yml': inventory(), 'pb.yml': PLAYBOOK });
    const plan = await runCli(
      [
        'plan',
        'pb.yml',
        '-i',
        'inv.yml',
        '--check',
        '--format',
        'markdown',
        '--out',
        'plan.json',
        '-e',
        'tag=a',
      ],
      { cwd },
    );
    expect(plan.code, plan.stderr).toBe(0);
    const saved = JSON.parse(readFileSync(join(cwd, 'plan.json'), 'utf8'));
    // The Markdown a reviewer approves carries the digest the run is held to.
    expect(plan.stdout).toContain(`Plan digest: \`${saved.digest}\``);
    expect(saved.basis.groups.patroni_leader).toEqual([leader]);
    // The server facts of the hosts the plan touches, asked read-only.
    expect(saved.basis.pg).toEqual({ [leader]: { versionNum: expect.any(Number), inRecovery: false } });

    // Unchanged: it runs, on the planned leader, and the journal names the plan.
    const ok = await runCli(['run', '--plan', 'plan.json', '--yes'], { cwd });
    expect(ok.code, ok.stderr + ok.stdout).toBe(0);
    expect(ok.stdout).toContain(`saved plan plan.json: ${saved.digest}`);
    expect(readFileSync(join(cwd, 'marker-a'), 'utf8').trim()).toBe(leader);

    // A changed -e: refused, naming the variable.
    const otherVar = await runCli(['run', '--plan', 'plan.json', '--yes', '-e', 'tag=b'], { cwd });
    expect(otherVar.code).toBe(2);
    expect(otherVar.stderr).toContain('-e tag: planned "a", now "b"');
    expect(existsSync(join(cwd, 'marker-b'))).toBe(false);

    // A one-character edit of the playbook: refused.
    writeFileSync(join(cwd, 'pb.yml'), PLAYBOOK.replace('on the leader', 'on the leaders'));
    const edited = await runCli(['run', '--plan', 'plan.json', '--yes'], { cwd });
    expect(edited.code).toBe(2);
    expect(edited.stderr).toContain('the playbook changed');
    writeFileSync(join(cwd, 'pb.yml'), PLAYBOOK);

    // A switchover since the plan: refused, naming the planned and the current leader.
    const other = cluster.members.find((m) => m.name !== leader)!.name;
    await switchoverTo(other);
    const moved = await runCli(['run', '--plan', 'plan.json', '--yes', '-e', 'tag=c'], { cwd });
    expect(moved.code).toBe(2);
    expect(moved.stderr).toContain(`patroni_leader: planned ${leader}, Patroni says ${other} now`);
    expect(existsSync(join(cwd, 'marker-c'))).toBe(false);
  }, 180_000);
});
