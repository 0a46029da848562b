// The seeds mutants start from: the repository's playbooks and inventories, paired the way they
// are meant to be used, plus small local-transport playbooks a run can execute without servers.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { COMMON_KEYS } from '../../src/playbook/model.js';

/** A playbook with the inventory and `-e` vars it validates with, unmutated. */
export interface Seed {
  name: string;
  playbook: { path: string; text: string };
  inventory: { path: string; text: string };
  extraVars: Record<string, unknown>;
}

/** The repository root (this file is test/fuzz/corpus.ts). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

const GITLAB = 'examples/gitlab-like/inventory.yml';
const GITLAB_BLUEGREEN = 'examples/gitlab-like/inventory-bluegreen.yml';
const GITLAB_GCP_RESTORE = 'examples/gitlab-like/inventory-gcp-restore.yml';
const LAB = 'test/fixtures/inventories/lab.yml';
const GROUPS = 'test/fixtures/inventories/groups.yml';
const TWO_SSH = 'test/fixtures/inventories/two-ssh.yml';
const SECRETS = 'test/fixtures/inventories/secrets.yml';
const LOCAL = 'inline/local-inventory.yml';

/** A run id shaped like pgrunbook's (`YYYYMMDD-HHMMSS-xxxx`), for the rollback's `-e upgrade_run`. */
const UPGRADE_RUN = '20260101-120000-abcd';

/** Which playbook goes with which inventory and `-e` vars (from the header comments and the tests). */
interface Pairing {
  name: string;
  playbook: string;
  inventory: string;
  extraVars: Record<string, unknown>;
}

const PAIRINGS: readonly Pairing[] = [
  // Shipped playbooks: the GitLab-like Patroni/GCE inventory is the one their headers name.
  { name: 'preflight@gitlab-like', playbook: 'playbooks/preflight.yml', inventory: GITLAB, extraVars: {} },
  {
    name: 'snapshot-backup@gitlab-like',
    playbook: 'playbooks/snapshot-backup.yml',
    inventory: GITLAB,
    extraVars: {},
  },
  {
    // "Give the backup with -e backup_dir=/path" (its header).
    name: 'restore-verify@gitlab-like',
    playbook: 'playbooks/restore-verify.yml',
    inventory: GITLAB,
    extraVars: { backup_dir: `/var/opt/gitlab/backups/patroni-01-db-gprd-${UPGRADE_RUN}` },
  },
  {
    // A chained backup from a replica (its header: -e backup_from=HOST).
    name: 'basebackup@gitlab-like',
    playbook: 'playbooks/basebackup.yml',
    inventory: GITLAB,
    extraVars: { backup_from: 'patroni-02-db-gprd' },
  },
  {
    name: 'pg-major-upgrade@gitlab-like',
    playbook: 'playbooks/pg-major-upgrade.yml',
    inventory: GITLAB,
    extraVars: {},
  },
  {
    // The line the upgrade prints: -e leader=HOST -e upgrade_run=RUN_ID -e expect_lsn=LSN.
    name: 'pg-major-upgrade-rollback@gitlab-like',
    playbook: 'playbooks/pg-major-upgrade-rollback.yml',
    inventory: GITLAB,
    extraVars: { leader: 'patroni-01-db-gprd', upgrade_run: UPGRADE_RUN, expect_lsn: '0/3000028' },
  },
  {
    // A GCP snapshot backup proven on the scratch instance of its own inventory (its header).
    name: 'gcp-restore-verify@gitlab-like-gcp-restore',
    playbook: 'playbooks/gcp-restore-verify.yml',
    inventory: GITLAB_GCP_RESTORE,
    extraVars: { backup_dir: `/var/opt/gitlab/backups/patroni-01-db-gprd-${UPGRADE_RUN}` },
  },
  // The blue-green playbooks, with the two-cluster inventory their headers name.
  {
    name: 'pg-major-upgrade-bluegreen@gitlab-like-bluegreen',
    playbook: 'playbooks/pg-major-upgrade-bluegreen.yml',
    inventory: GITLAB_BLUEGREEN,
    extraVars: {},
  },
  {
    name: 'pg-bluegreen-switchover@gitlab-like-bluegreen',
    playbook: 'playbooks/pg-bluegreen-switchover.yml',
    inventory: GITLAB_BLUEGREEN,
    extraVars: {},
  },
  {
    name: 'pg-bluegreen-cleanup@gitlab-like-bluegreen',
    playbook: 'playbooks/pg-bluegreen-cleanup.yml',
    inventory: GITLAB_BLUEGREEN,
    extraVars: {},
  },
  // The lab demo and the local lab fixture (test/unit/plan/plan.test.ts plans them together).
  { name: 'lab-demo@lab', playbook: 'examples/lab-demo.yml', inventory: LAB, extraVars: {} },
  {
    name: 'restore-verify@lab',
    playbook: 'playbooks/restore-verify.yml',
    inventory: LAB,
    extraVars: { backup_dir: '/srv/pgrunbook-lab/backups/lab-20260101-120000-abcd' },
  },
  // Fixtures that validate (test/unit/playbook/validate.test.ts, test/unit/plan/plan.test.ts).
  { name: 'blocks@groups', playbook: 'test/fixtures/playbooks/blocks.yml', inventory: GROUPS, extraVars: {} },
  {
    name: 'bracket-access@lab',
    playbook: 'test/fixtures/playbooks/bracket-access.yml',
    inventory: LAB,
    extraVars: {},
  },
  {
    name: 'mode-quoted@lab',
    playbook: 'test/fixtures/playbooks/mode-quoted.yml',
    inventory: LAB,
    extraVars: {},
  },
  {
    name: 'optional-names@lab',
    playbook: 'test/fixtures/playbooks/optional-names.yml',
    inventory: LAB,
    extraVars: {},
  },
  {
    name: 'two-hosts@two-ssh',
    playbook: 'test/fixtures/playbooks/two-hosts.yml',
    inventory: TWO_SSH,
    extraVars: {},
  },
  {
    // validate.test.ts: the inventory vouches for pgdata, -e for zebra_quux.
    name: 'unknown-names@lab',
    playbook: 'test/fixtures/playbooks/unknown-names.yml',
    inventory: LAB,
    extraVars: { zebra_quux: 1 },
  },
  // The secrets fixture has no playbook of its own: the read-only preflight runs on any hosts.
  { name: 'preflight@secrets', playbook: 'playbooks/preflight.yml', inventory: SECRETS, extraVars: {} },
];

/** Fixtures that are invalid on purpose (each test expects problems): no seed starts from them. */
export const EXCLUDED: Readonly<Record<string, string>> = {
  'test/fixtures/playbooks/duplicate-ids.yml': 'a duplicate step id',
  'test/fixtures/playbooks/expression-mistakes.yml': 'expressions that cannot evaluate',
  'test/fixtures/playbooks/host-patterns.yml': 'host patterns that match nothing',
  'test/fixtures/playbooks/mode-unquoted.yml': 'an unquoted file mode',
  'test/fixtures/playbooks/no-step-type.yml': 'a step without a type',
  'test/fixtures/playbooks/shell-injection.yml': 'templates sh cannot quote',
  'test/fixtures/playbooks/three-mistakes.yml': 'three mistakes',
  'test/fixtures/playbooks/two-step-types.yml': 'two step types in one step',
  'test/fixtures/playbooks/unknown-param.yml': 'an unknown parameter',
  'test/fixtures/playbooks/used-before-registered.yml': 'a name used before it is registered',
  'test/fixtures/inventories/cycle.yml': 'a group cycle',
  'test/fixtures/inventories/inline-password.yml': 'an inline password',
  'test/fixtures/inventories/unknown-members.yml': 'unknown hosts and groups',
};

const LOCAL_INVENTORY = `# Local hosts for the fuzz corpus: every command runs on this machine.
vars:
  color: inventory
  items: [x, y]
  port: 5432
defaults:
  transport: local
hosts:
  a:
    vars: { who: a, role: primary }
  b:
    vars: { who: b, role: replica }
  c:
    vars: { who: c, role: spare }
groups:
  pair:
    hosts: [a, b]
    vars: { color: group }
  solo:
    hosts: [c]
  everyone:
    children: [pair, solo]
`;

const LOCAL_BASICS = `# Local seed: register, set_fact, when, assert, vars['x'], a step narrowed with hosts.
- name: Local basics
  hosts: pair
  vars:
    label: "{{ who }}-{{ color }}"
    tmp_dir: /tmp
  steps:
    - id: hello
      name: Say {{ greeting }} on {{ host.name }}
      shell: "echo {{ greeting }} from {{ who }}"
    - set_fact:
        double: "{{ who }}{{ who }}"
        count: "{{ items | length }}"
    - name: Only on the primary
      when: role == 'primary'
      register: primary_out
      shell: "echo {{ label }} {{ vars['color'] }} in {{ tmp_dir }}"
    - assert:
        that:
          - double == who + who
          - count == 2
          - hello.rc == 0
          - "'from' in hello.stdout"
        msg: facts are what they should be
    - name: Narrowed to b
      hosts: b
      shell: "echo {{ hello.stdout | trim }} {{ port }} {{ primary_out.skipped }}"
`;

const LOCAL_BLOCKS = `# Local seed: block/rescue/always, groups[...], hostvars[...] in a later play.
- name: Blocks and rescue
  hosts: everyone
  vars:
    fail_code: 3
  steps:
    - id: probe
      shell: "echo {{ host.name }}"
    - name: A block that fails on c and is rescued
      block:
        - name: fail on c
          when: host.name == 'c'
          shell: "exit {{ fail_code }}"
        - id: inside
          shell: "echo inside {{ groups.pair | join(',') }}"
      rescue:
        - shell: "echo rescued {{ host.name }}"
      always:
        - shell: "echo always {{ probe.stdout | trim }}"
    - name: Only the pair
      hosts: pair
      block:
        - shell: "echo {{ groups['everyone'] | length }} {{ color }}"
  always:
    - shell: "echo done on {{ host.name }}"
- name: Read the first play's hosts
  hosts: a
  steps:
    - shell: "echo {{ hostvars['b'].who }} {{ hostvars['c'].probe.rc }}"
    - assert:
        that: "'a' in groups.pair and hostvars['a'].role == 'primary'"
`;

const LOCAL_SERIAL = `# Local seed: serial, retries/until, ignore_errors, default and is defined, an exclusion pattern.
- name: One host at a time
  hosts: everyone:!c
  serial: 1
  vars:
    attempts: 2
  steps:
    - id: flaky
      shell: "echo {{ attempts }}"
      retries: 2
      delay: 0
      until: result.rc == 0
    - id: soft
      shell: "exit 1"
      ignore_errors: true
    - assert:
        that: ["soft.failed", "flaky.stdout | trim | int == attempts"]
    - set_fact: { seen: "{{ optional_thing | default('none') }}" }
    - shell: "echo {{ seen }}"
      when: optional_thing is not defined
- name: Then the spare
  hosts: solo
  steps:
    - shell: { cmd: ["echo", "{{ who }}", "{{ items | join('+') }}"] }
`;

/** Inline seeds over the local transport: a run executes them for real (they only echo). */
const LOCAL_SEEDS: readonly {
  name: string;
  file: string;
  text: string;
  extraVars: Record<string, unknown>;
}[] = [
  {
    name: 'local-basics@local',
    file: 'inline/local-basics.yml',
    text: LOCAL_BASICS,
    extraVars: { greeting: 'hi' },
  },
  { name: 'local-blocks@local', file: 'inline/local-blocks.yml', text: LOCAL_BLOCKS, extraVars: {} },
  { name: 'local-serial@local', file: 'inline/local-serial.yml', text: LOCAL_SERIAL, extraVars: {} },
];

/** Names of the inline seeds written for this corpus (local hosts, shell/set_fact/assert only). */
export const LOCAL_SEED_NAMES: readonly string[] = LOCAL_SEEDS.map((s) => s.name);

/** Step types that need no server: a run of them on local hosts executes for real. */
const OFFLINE_STEP_TYPES = new Set(['shell', 'set_fact', 'assert', 'file.write']);

/** Step types of a parsed playbook, blocks included. */
function stepTypesOf(value: unknown): string[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((item): string[] => {
    if (!item || typeof item !== 'object' || Array.isArray(item)) return [];
    const o = item as Record<string, unknown>;
    if ('block' in o) return ['block', 'rescue', 'always'].flatMap((k) => stepTypesOf(o[k]));
    if ('hosts' in o && 'steps' in o) return ['steps', 'rescue', 'always'].flatMap((k) => stepTypesOf(o[k]));
    return Object.keys(o).filter((k) => !COMMON_KEYS.includes(k));
  });
}

/**
 * Whether a run of this seed needs no server: every host of its inventory is local and every
 * step is a shell/set_fact/assert/file.write. (Its commands then really run on this machine: run
 * mutants in a scratch directory.)
 */
export function runsWithoutServers(seed: Seed): boolean {
  const opts = { version: '1.2', schema: 'core' } as const;
  const inv = (parse(seed.inventory.text, opts) ?? {}) as {
    defaults?: { transport?: string; ssh?: unknown };
    hosts?: Record<string, { transport?: string; ssh?: unknown } | null>;
  };
  const transport = (h: { transport?: string; ssh?: unknown } | null | undefined) =>
    h?.transport ?? inv.defaults?.transport ?? (h?.ssh || inv.defaults?.ssh ? 'ssh' : undefined);
  const hostsLocal = Object.values(inv.hosts ?? {}).every((h) => transport(h) === 'local');
  const types = stepTypesOf(parse(seed.playbook.text, opts));
  return hostsLocal && types.every((t) => OFFLINE_STEP_TYPES.has(t));
}

/** Every seed, read from the repository now (so a changed playbook changes its mutants). */
export function seeds(): Seed[] {
  const read = (rel: string) => ({ path: rel, text: readFileSync(join(REPO_ROOT, rel), 'utf8') });
  const fromRepo = PAIRINGS.map((p) => ({
    name: p.name,
    playbook: read(p.playbook),
    inventory: read(p.inventory),
    extraVars: { ...p.extraVars },
  }));
  const local = LOCAL_SEEDS.map((s) => ({
    name: s.name,
    playbook: { path: s.file, text: s.text },
    inventory: { path: LOCAL, text: LOCAL_INVENTORY },
    extraVars: { ...s.extraVars },
  }));
  return [...fromRepo, ...local];
}

/** `.yml` files under a repository directory, relative to the root, sorted. */
function ymlUnder(dir: string, recursive: boolean): string[] {
  const names = readdirSync(join(REPO_ROOT, dir), { recursive, encoding: 'utf8' });
  return names
    .filter((n) => n.endsWith('.yml'))
    .map((n) => `${dir}/${n}`)
    .sort();
}

/** True for a YAML list (a playbook); inventories are mappings. */
function isPlaybookFile(rel: string): boolean {
  const v: unknown = parse(readFileSync(join(REPO_ROOT, rel), 'utf8'), { version: '1.2', schema: 'core' });
  // A list of plays, or a playbook that declares its variables (variables: and plays:).
  return (
    Array.isArray(v) || (!!v && typeof v === 'object' && Array.isArray((v as { plays?: unknown }).plays))
  );
}

/**
 * The files the corpus is drawn from, found on disk: a test checks each is used by a seed or
 * listed in EXCLUDED, so a new shipped playbook cannot be forgotten.
 */
export function corpusFiles(): { playbooks: string[]; inventories: string[] } {
  const examples = ymlUnder('examples', true);
  return {
    playbooks: [
      ...ymlUnder('playbooks', false),
      ...examples.filter(isPlaybookFile),
      ...ymlUnder('test/fixtures/playbooks', false),
    ],
    inventories: [
      ...examples.filter((f) => !isPlaybookFile(f)),
      ...ymlUnder('test/fixtures/inventories', false),
    ],
  };
}
