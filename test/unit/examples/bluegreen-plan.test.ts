// The blue-green change requests committed under examples/: the Markdown plans of the build and
// the switchover playbooks for the GitLab-like two-cluster inventory, regenerated here so they
// cannot go stale (a difference fails the run; `npx vitest -u` rewrites them after a deliberate
// change).
import { describe, expect, it } from 'vitest';
import { planCommand } from '../../../src/cli/commands/plan.js';

const INVENTORY = 'examples/gitlab-like/inventory-bluegreen.yml';

async function markdown(playbook: string, assumeLeader: string): Promise<{ code: number; text: string }> {
  let text = '';
  const code = await planCommand(
    playbook,
    { inventory: INVENTORY, extraVars: {}, format: 'markdown', assumeLeader },
    (s) => {
      text += s;
    },
  );
  return { code, text };
}

describe('examples/gitlab-like/pg-major-upgrade-bluegreen.plan.md', () => {
  it(`is what \`pgrunbook plan playbooks/pg-major-upgrade-bluegreen.yml -i ${INVENTORY} --assume-leader patroni-01-db-gprd --format markdown\` prints`, async () => {
    const { code, text } = await markdown('playbooks/pg-major-upgrade-bluegreen.yml', 'patroni-01-db-gprd');
    expect(code).toBe(0);
    await expect(text).toMatchFileSnapshot(
      '../../../examples/gitlab-like/pg-major-upgrade-bluegreen.plan.md',
    );
    // The copy as the replication role, from blue's leader onto green's first host, with its slot.
    expect(text).toContain('pg_basebackup of patroni-01-db-gprd into /var/opt/gitlab/postgresql/data13-copy');
    expect(text).toContain('--create-slot --slot=pgrunbook_bg_copy');
    expect(text).toContain('user=gitlab-replicator sslmode=verify-full');
    // Recovery stops before the switch point, never archives, and Patroni is told to keep the slots.
    expect(text).toContain('recovery_target_inclusive = ');
    expect(text).toContain('ignore_slots');
    // pg_upgrade of the copy into green's directory.
    expect(text).toMatch(
      /--old-datadir=\/var\/opt\/gitlab\/postgresql\/data13-copy --new-datadir=\/var\/opt\/gitlab\/postgresql\/data15/,
    );
    expect(text).not.toMatch(/PGPASSWORD_GPRD=|PGREPLICATION_GPRD=|PATRONI_API_PASSWORD=/);
  });
});

describe('examples/gitlab-like/pg-bluegreen-switchover.plan.md', () => {
  it(`is what \`pgrunbook plan playbooks/pg-bluegreen-switchover.yml -i ${INVENTORY} --assume-leader patroni-01-db-gprd,patroni-v15-01-db-gprd --format markdown\` prints`, async () => {
    const { code, text } = await markdown(
      'playbooks/pg-bluegreen-switchover.yml',
      'patroni-01-db-gprd,patroni-v15-01-db-gprd',
    );
    expect(code).toBe(0);
    await expect(text).toMatchFileSnapshot('../../../examples/gitlab-like/pg-bluegreen-switchover.plan.md');
    // Behind the approval, in order: pause, catch-up, forward off, sequences, the way back, point, resume.
    const order = [
      'Pause PgBouncer',
      'green has applied everything blue wrote',
      'Stop replicating into green',
      "Sequences on green set past blue's values",
      'The way back starts here',
      'blue follows green from this point',
      "Point PgBouncer at green's leader",
      'Resume PgBouncer',
    ].map((t) => text.indexOf(t));
    expect(order.every((i) => i > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(text).toMatch(/Approval asked: \*Switch the clients from blue to green/);
    expect(text).toContain('host=10.220.16.111 port=5432');
  });
});
