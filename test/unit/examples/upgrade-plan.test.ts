// The change-request sample committed under examples/: the Markdown plan of the shipped upgrade
// playbook for the GitLab-like inventory, regenerated here so it cannot go stale (a difference
// fails the run; `npx vitest -u` rewrites it after a deliberate change).
import { describe, expect, it } from 'vitest';
import { planCommand } from '../../../src/cli/commands/plan.js';

const SAMPLE = '../../../examples/gitlab-like/pg-major-upgrade.plan.md';

async function markdown(): Promise<{ code: number; text: string }> {
  let text = '';
  const code = await planCommand(
    'playbooks/pg-major-upgrade.yml',
    {
      inventory: 'examples/gitlab-like/inventory.yml',
      extraVars: {},
      format: 'markdown',
      assumeLeader: 'patroni-01-db-gprd',
    },
    (s) => {
      text += s;
    },
  );
  return { code, text };
}

describe('examples/gitlab-like/pg-major-upgrade.plan.md', () => {
  it('is what `pgrunbook plan playbooks/pg-major-upgrade.yml -i examples/gitlab-like/inventory.yml --assume-leader patroni-01-db-gprd --format markdown` prints', async () => {
    const { code, text } = await markdown();
    expect(code).toBe(0);
    await expect(text).toMatchFileSnapshot(SAMPLE);
  });

  it('shows a reviewer the exact commands per host, the gates, the downtime and the rollback path', async () => {
    const { text } = await markdown();
    // The leader and its replicas as assumed, each step on the hosts it runs on.
    expect(text).toContain('leader patroni-01-db-gprd; replicas patroni-02-db-gprd, patroni-03-db-gprd');
    // pg_upgrade exactly, as the server user (Omnibus layout from the inventory).
    expect(text).toMatch(
      /sudo -n -u gitlab-psql -- sh -c '.*\/opt\/gitlab\/embedded\/postgresql\/15\/bin\/pg_upgrade --old-bindir=\/opt\/gitlab\/embedded\/postgresql\/13\/bin --new-bindir=\/opt\/gitlab\/embedded\/postgresql\/15\/bin --old-datadir=\/var\/opt\/gitlab\/postgresql\/data --new-datadir=\/var\/opt\/gitlab\/postgresql\/data15 .*--jobs=8 --link'/s,
    );
    // The documented rsync, from the leader to each replica.
    for (const r of ['10.220.16.102', '10.220.16.103'])
      expect(text).toContain(
        `rsync --archive --delete --hard-links --size-only --no-inc-recursive -e '\\''ssh -o BatchMode=yes -i /root/.ssh/pg_upgrade_ed25519'\\'' --exclude='\\''/data/pg_tblspc/*'\\'' --exclude='\\''/data15/pg_tblspc/*'\\'' /var/opt/gitlab/postgresql/data /var/opt/gitlab/postgresql/data15 root@${r}:/var/opt/gitlab/postgresql`,
      );
    // The point of no return, its gate and the rollback path; the downtime steps marked.
    expect(text).toContain('**⚠ Point of no return.**');
    expect(text).toContain('playbooks/pg-major-upgrade-rollback.yml');
    expect(text).toMatch(/Approval asked: \*POINT OF NO RETURN/);
    expect(text).toMatch(/#### \d+\. ⏱ Stop PostgreSQL 13 on the leader \(writes stop here\)/);
    expect(text).toMatch(/Downtime: the \d+ step\(s\) marked ⏱/);
    // Undo per step is shown (what a failure before the point of no return does).
    expect(text).toContain('put the old cluster back (global/pg_control.old → pg_control)');
    // Secrets come from the environment and are never in the document.
    expect(text).not.toMatch(/PGPASSWORD_GPRD=|PATRONI_API_PASSWORD=/);
  });
});
