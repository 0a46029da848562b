// Chef's output as its doc formatter prints it (Chef Client 12–14, Chef Infra Client 15–16, the
// "Infra Phase" lines of 17+), parsed into the outputs of chef.run; and the commands the chef
// steps build, quoted.
import { describe, expect, it } from 'vitest';
import chefDisable from '../../../src/steps/chef/disable.js';
import chefEnable from '../../../src/steps/chef/enable.js';
import { durationSeconds, parseChefOutput } from '../../../src/steps/chef/output.js';
import chefRun, { chefArgv } from '../../../src/steps/chef/run.js';
import type { PlanContext } from '../../../src/steps/define.js';

const CONVERGED = `Starting Chef Infra Client, version 16.13.16
resolving cookbooks for run list: ["gitlab-patroni::default"]
Synchronizing Cookbooks:
  - gitlab-patroni (0.4.2)
Installing Cookbook Gems:
Compiling Cookbooks...
Converging 14 resources
Recipe: gitlab-patroni::default
  * directory[/var/opt/gitlab/patroni] action create (up to date)
  * template[/var/opt/gitlab/patroni/patroni.yml] action create
    - update content in file /var/opt/gitlab/patroni/patroni.yml from 3b1c9e to 8a3f12
    --- /var/opt/gitlab/patroni/patroni.yml	2024-03-01 10:00:00.000000000 +0000
    +++ /var/opt/gitlab/patroni/.chef-patroni20240301-1234-1xyz.yml	2024-03-01 10:05:00.000000000 +0000
    @@ -3,5 +3,5 @@
     postgresql:
       parameters:
    -    work_mem: 4MB
    +    work_mem: 64MB
    - listen
    + listen
       archive_mode: on

  * service[patroni] action enable (up to date)
  * file[/etc/logrotate.d/patroni] action create (skipped due to not_if)
  * execute[reload patroni] action run
    - execute systemctl reload patroni

Running handlers:
Running handlers complete
Chef Infra Client finished, 2/14 resources updated in 01 minutes 04 seconds
`;

const WHY_RUN = `Starting Chef Infra Client, version 17.10.3
Patents: https://www.chef.io/patents
Infra Phase starting
[2024-03-01T10:00:00+00:00] WARN: Run List override has been provided.
resolving cookbooks for run list: ["gitlab-patroni::postgres"]
Converging 4 resources
Recipe: gitlab-patroni::postgres
  * template[/var/opt/gitlab/postgresql/data/postgresql.conf] action create
    - Would update content in file /var/opt/gitlab/postgresql/data/postgresql.conf from 205054 to db541f
    --- /var/opt/gitlab/postgresql/data/postgresql.conf	2024-03-01 10:00:00.000000000 +0000
    +++ /tmp/chef-rendered-template20240301-77-abc	2024-03-01 10:00:01.000000000 +0000
    @@ -1 +1 @@
    -work_mem = '4MB'
    +work_mem = '64MB'
  * service[postgresql] action start
    * Service status not available. Assuming a prior action would have installed the service.
    * Assuming status of not running.
    - Would start service service[postgresql]
  * file[/etc/motd] action create (up to date)
[2024-03-01T10:00:02+00:00] WARN: In why-run mode, so NOT performing node save.

Running handlers:
Running handlers complete
Infra Phase complete, 2/4 resources would have been updated
`;

const FAILED = `Starting Chef Infra Client, version 16.13.16
Converging 3 resources
Recipe: gitlab-patroni::default
  * template[/etc/gitlab/gitlab.rb] action create
    - update content in file /etc/gitlab/gitlab.rb from 111111 to 222222
    (diff output suppressed by config)

  * execute[check postgresql configuration] action run
    
    ================================================================================
    Error executing action \`run\` on resource 'execute[check postgresql configuration]'
    ================================================================================
    
    Mixlib::ShellOut::ShellCommandFailed
    ------------------------------------
    Expected process to exit with [0], but received '1'
    ---- Begin output of postgres -C work_mem ----
    STDOUT: 
    STDERR: FATAL:  invalid value for parameter "work_mem": "64XB"
    ---- End output of postgres -C work_mem ----
    Ran postgres -C work_mem returned 1
    
    Resource Declaration:
    ---------------------
    # In /var/chef/cache/cookbooks/gitlab-patroni/recipes/default.rb
    
     42: execute 'check postgresql configuration' do
     43:   command 'postgres -C work_mem'
     44: end
    
    System Info:
    ------------
    chef_version=16.13.16
    
Running handlers:
[2024-03-01T10:00:00+00:00] ERROR: Running exception handlers
Running handlers complete
[2024-03-01T10:00:00+00:00] ERROR: Exception handlers complete
Chef Infra Client failed. 1 resources updated in 03 seconds
[2024-03-01T10:00:00+00:00] FATAL: Stacktrace dumped to /var/chef/cache/chef-stacktrace.out
[2024-03-01T10:00:00+00:00] FATAL: Please provide the contents of the stacktrace.out file if you file a bug report
[2024-03-01T10:00:00+00:00] FATAL: Mixlib::ShellOut::ShellCommandFailed: execute[check postgresql configuration] (gitlab-patroni::default line 42) had an error: Mixlib::ShellOut::ShellCommandFailed: Expected process to exit with [0], but received '1'
`;

describe('parseChefOutput', () => {
  it('reads the summary, the changed resources and their diffs of a converged run', () => {
    const r = parseChefOutput(CONVERGED);
    expect(r).toMatchObject({
      outcome: 'finished',
      whyRun: false,
      updated: 2,
      total: 14,
      duration: '01 minutes 04 seconds',
      durationSeconds: 64,
      summary: 'Chef Infra Client finished, 2/14 resources updated in 01 minutes 04 seconds',
      error: null,
    });
    expect(r.resources.map((x) => [x.resource, x.action, x.changes])).toEqual([
      [
        'template[/var/opt/gitlab/patroni/patroni.yml]',
        'create',
        ['update content in file /var/opt/gitlab/patroni/patroni.yml from 3b1c9e to 8a3f12'],
      ],
      ['execute[reload patroni]', 'run', ['execute systemctl reload patroni']],
    ]);
    // The hunk's line counts end the diff: "- listen" is a removed line, not a change.
    expect(r.resources[0]!.diff).toEqual([
      '--- /var/opt/gitlab/patroni/patroni.yml\t2024-03-01 10:00:00.000000000 +0000',
      '+++ /var/opt/gitlab/patroni/.chef-patroni20240301-1234-1xyz.yml\t2024-03-01 10:05:00.000000000 +0000',
      '@@ -3,5 +3,5 @@',
      ' postgresql:',
      '   parameters:',
      '-    work_mem: 4MB',
      '+    work_mem: 64MB',
      '- listen',
      '+ listen',
      '   archive_mode: on',
    ]);
  });

  it('reads a why-run (Chef 17+ "Infra Phase" lines): what would change, nothing changed', () => {
    const r = parseChefOutput(WHY_RUN);
    expect(r).toMatchObject({ outcome: 'finished', whyRun: true, updated: 2, total: 4, duration: null });
    expect(r.resources).toEqual([
      {
        resource: 'template[/var/opt/gitlab/postgresql/data/postgresql.conf]',
        action: 'create',
        changes: [
          'update content in file /var/opt/gitlab/postgresql/data/postgresql.conf from 205054 to db541f',
        ],
        diff: [
          '--- /var/opt/gitlab/postgresql/data/postgresql.conf\t2024-03-01 10:00:00.000000000 +0000',
          '+++ /tmp/chef-rendered-template20240301-77-abc\t2024-03-01 10:00:01.000000000 +0000',
          '@@ -1 +1 @@',
          "-work_mem = '4MB'",
          "+work_mem = '64MB'",
        ],
      },
      {
        resource: 'service[postgresql]',
        action: 'start',
        changes: ['start service service[postgresql]'],
        diff: [],
      },
    ]);
  });

  it("takes a failed run's error block (title and exception) and Chef's failed line", () => {
    const r = parseChefOutput(FAILED);
    expect(r.outcome).toBe('failed');
    expect(r.updated).toBe(1);
    expect(r.total).toBeNull();
    expect(r.error).toBe(
      [
        "Error executing action `run` on resource 'execute[check postgresql configuration]'",
        'Mixlib::ShellOut::ShellCommandFailed',
        '------------------------------------',
        "Expected process to exit with [0], but received '1'",
        '---- Begin output of postgres -C work_mem ----',
        'STDOUT:',
        'STDERR: FATAL:  invalid value for parameter "work_mem": "64XB"',
        '---- End output of postgres -C work_mem ----',
        'Ran postgres -C work_mem returned 1',
        'Chef Infra Client failed. 1 resources updated in 03 seconds',
      ].join('\n'),
    );
    // The resource converged before the failure is still reported; the block's code is not.
    expect(r.resources.map((x) => x.resource)).toEqual(['template[/etc/gitlab/gitlab.rb]']);
    expect(r.resources[0]!.diff).toEqual(['(diff output suppressed by config)']);
  });

  it('keeps a long error block to a readable size', () => {
    const noisy = FAILED.replace(
      'STDOUT: \n',
      `STDOUT: ${Array.from({ length: 200 }, (_, i) => `    line ${i}`).join('\n')}\n`,
    );
    const r = parseChefOutput(noisy);
    expect(r.error!.split('\n').length).toBeLessThanOrEqual(32);
    expect(r.error).toMatch(/more lines in the output above/);
    expect(r.error!.split('\n').at(-1)).toBe('Chef Infra Client failed. 1 resources updated in 03 seconds');
  });

  it('reads the older "Chef Client" lines and a failure before the converge (no block)', () => {
    const old = parseChefOutput(
      '  * chef_client_updater_updater[update chef-client] action update (up to date)\n\nRunning handlers:\nRunning handlers complete\nChef Client finished, 0/1 resources updated in 44.114460122 seconds\n',
    );
    expect(old).toMatchObject({ outcome: 'finished', updated: 0, total: 1, resources: [] });
    expect(old.durationSeconds).toBeCloseTo(44.114, 2);
    const early = parseChefOutput(
      [
        'Running handlers:',
        '[2024-02-27T11:57:27-05:00] ERROR: Running exception handlers',
        'Running handlers complete',
        'Infra Phase failed. 0 resources updated in 01 seconds',
        '[2024-02-27T11:57:27-05:00] FATAL: Stacktrace dumped to /var/chef/cache/chef-stacktrace.out',
        '[2024-02-27T11:57:27-05:00] FATAL: Net::HTTPClientException: 412 "Precondition Failed"',
      ].join('\n'),
    );
    expect(early.outcome).toBe('failed');
    expect(early.error).toBe(
      'Net::HTTPClientException: 412 "Precondition Failed"\nInfra Phase failed. 0 resources updated in 01 seconds',
    );
  });

  it('attributes changes of nested resources to the resource that made them, ignoring colours', () => {
    const r = parseChefOutput(
      [
        'Recipe: cpe_touchid::default',
        '  * cpe_touchid[Configure TouchID] action manage',
        '    * template[/etc/pam.d/sudo_local] action create',
        '\x1b[32m      - create new file /etc/pam.d/sudo_local\x1b[0m',
        "      - change mode from '' to '0444'",
        '    * execute[echo [done]] action run',
        '      - execute echo [done]',
        '',
        'Chef Infra Client finished, 3/3 resources updated in 02 seconds',
      ].join('\n'),
    );
    expect(r.resources.map((x) => [x.resource, x.changes])).toEqual([
      [
        'template[/etc/pam.d/sudo_local]',
        ['create new file /etc/pam.d/sudo_local', "change mode from '' to '0444'"],
      ],
      ['execute[echo [done]]', ['execute echo [done]']],
    ]);
  });

  it('reports an output without a summary line as unknown', () => {
    expect(parseChefOutput('some wrapper said ok\n')).toMatchObject({
      outcome: 'unknown',
      updated: null,
      total: null,
      error: null,
    });
  });

  it('sums Chef pretty durations', () => {
    expect(durationSeconds('04 seconds')).toBe(4);
    expect(durationSeconds('01 hours 02 minutes 03 seconds')).toBe(3723);
    expect(durationSeconds('soon')).toBeNull();
  });
});

const ctx = (become?: 'sudo'): PlanContext => ({
  host: { name: 'db1', become } as PlanContext['host'],
  facts: {},
  unknown: new Set(),
  evaluate: (e) => (e === 'run.id' ? 'run-1' : undefined),
  peer: () => undefined,
});
const lines = (ops: { kind: string; line?: string }[]) => ops.flatMap((o) => (o.line ? [o.line] : []));

describe('commands the chef steps build', () => {
  it('chef.run: flags in order, every value quoted, --why-run only for the preview', () => {
    const p = {
      command: ['/opt/chef/bin/chef-client'],
      override_runlist: 'recipe[gitlab-patroni], role[x y]',
      json_attributes: '/tmp/attrs.json',
      flags: ['-l', 'warn'],
    };
    expect(chefArgv(p)).toEqual([
      '/opt/chef/bin/chef-client',
      '--once',
      '--no-color',
      '-o',
      'recipe[gitlab-patroni], role[x y]',
      '-j',
      '/tmp/attrs.json',
      '-l',
      'warn',
    ]);
    expect(chefArgv({ once: false }, true)).toEqual(['chef-client', '--no-color', '--why-run']);
    const plan = chefRun.plan(ctx('sudo'), p);
    expect(lines(plan.ops)).toEqual([
      "sudo -n -- sh -c '/opt/chef/bin/chef-client --once --no-color -o '\\''recipe[gitlab-patroni], role[x y]'\\'' -j /tmp/attrs.json -l warn'",
    ]);
    expect(plan.undo?.action).toMatch(/^none: a Chef run is not reversed automatically/);
  });

  it('chef.disable: the reason is one quoted argument; lock file content is quoted', () => {
    const reason = `maintenance $(touch /tmp/x) 'prod#1'`;
    const cmd = chefDisable.plan(ctx(), {
      reason,
      command: 'chef-client-disable',
      enable_command: ['chef-client-enable'],
    });
    expect(lines(cmd.ops)).toEqual([`chef-client-disable 'maintenance $(touch /tmp/x) '\\''prod#1'\\'''`]);
    expect(lines(cmd.undo!.ops)).toEqual(['chef-client-enable']);
    const lock = chefDisable.plan(ctx(), { reason, lock_file: '/etc/chef/my lock' });
    expect(lines(lock.ops)[0]).toContain(`'reason: maintenance $(touch /tmp/x) '\\''prod#1'\\'''`);
    expect(lines(lock.ops)[0]).toContain("> '/etc/chef/my lock'");
    expect(lines(lock.undo!.ops)[0]).toContain("grep -qxF 'run: run-1' '/etc/chef/my lock'");
  });

  it('refuses mixed or incomplete modes', () => {
    expect(() => chefDisable.plan(ctx(), { lock_file: '/x', command: 'd', enable_command: 'e' })).toThrow(
      /not both/,
    );
    expect(() => chefDisable.plan(ctx(), { command: 'd' })).toThrow(/enable_command/);
    expect(() => chefEnable.plan(ctx(), { check_command: 'c' })).toThrow(/needs `command`/);
  });
});
