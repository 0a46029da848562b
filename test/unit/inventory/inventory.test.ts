import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { formatProblem } from '../../../src/errors.js';
import {
  type Inventory,
  loadInventory,
  patroniUrlProblem,
  resolveSecrets,
  secretEnvNames,
} from '../../../src/inventory/inventory.js';
import { Secret } from '../../../src/util/secret.js';

const path = (name: string) => fileURLToPath(new URL(`../../fixtures/inventories/${name}`, import.meta.url));
const load = (name: string): Inventory => {
  const r = loadInventory(path(name));
  expect(r.problems.map(formatProblem)).toEqual([]);
  return r.inventory!;
};

describe('groups and variables', () => {
  const inv = load('groups.yml');

  it('groups expand their children, without duplicates, in inventory order', () => {
    expect([...inv.groups]).toEqual([
      ['dbs', ['db1', 'db2']],
      ['web', ['web1']],
      ['prod', ['db1', 'db2', 'web1']],
      ['late', ['db2']],
      // derived: the hosts with pgbouncer settings (none here)
      ['pgbouncers', []],
    ]);
  });

  it('each host knows the groups it belongs to, directly or through children', () => {
    expect(inv.hosts.get('db1')!.groups).toEqual(['dbs', 'prod']);
    expect(inv.hosts.get('db2')!.groups).toEqual(['dbs', 'prod', 'late']);
    expect(inv.hosts.get('web1')!.groups).toEqual(['web', 'prod']);
    expect(inv.hosts.get('lonely')!.groups).toEqual([]);
  });

  it('precedence: inventory vars < group vars < host vars', () => {
    expect(inv.hosts.get('db1')!.vars.level).toBe('host');
    expect(inv.hosts.get('db2')!.vars.level).toBe('dbs');
    expect(inv.hosts.get('web1')!.vars.level).toBe('inventory');
    expect(inv.hosts.get('lonely')!.vars).toEqual({ level: 'inventory', only_inventory: 'from-inventory' });
  });

  it('vars of parent groups reach hosts of their children; inventory vars reach everyone', () => {
    expect(inv.hosts.get('db1')!.vars.prod_var).toBe('from-prod');
    expect(inv.hosts.get('web1')!.vars).toEqual({
      level: 'inventory',
      only_inventory: 'from-inventory',
      prod_var: 'from-prod',
      web: true,
    });
  });

  it('a child group overrides its parents whatever the file order; file order breaks ties', () => {
    expect(inv.hosts.get('db1')!.vars.group_var).toBe('from-dbs');
    // dbs (a child of prod) is deeper than late (top level), so it wins although late comes later.
    expect(inv.hosts.get('db2')!.vars.group_var).toBe('from-dbs');
  });

  it('defaults merge under host settings', () => {
    const db1 = inv.hosts.get('db1')!;
    expect(db1.transport).toBe('local');
    expect(db1.pg).toMatchObject({
      user: 'admin',
      port: 5433,
      host: '127.0.0.1',
      database: 'postgres',
      sslmode: 'prefer',
    });
    expect(inv.hosts.get('db2')!.pg).toMatchObject({ user: 'admin', port: 6432 });
  });

  it('ssh settings: defaults merged, host defaults to the name, port 22, known_hosts relative to the inventory', () => {
    const two = load('two-ssh.yml');
    const db1 = two.hosts.get('db1')!;
    const db2 = two.hosts.get('db2')!;
    expect(db1.transport).toBe('ssh');
    expect(db1.ssh).toMatchObject({
      hostName: 'db1',
      host: '10.0.0.11',
      port: 22,
      user: 'deploy',
      acceptUnknownHostKey: false,
    });
    expect(db2.ssh).toMatchObject({ host: '10.0.0.12', port: 2222, user: 'deploy' });
    expect(db1.ssh!.knownHostsFile).toBe(path('known_hosts-unused'));
    // pg host follows the ssh address when not given
    expect(db2.pg).toMatchObject({ host: '10.0.0.12', port: 5432, user: 'admin', database: 'app' });
    expect(db2.pg!.password).toBeUndefined();
    expect(db2.pg!.passwordSource).toEqual({ env: 'PGRB_UNIT_PG_PASSWORD' });
  });
});

describe('inventory problems', () => {
  it("a group cycle is reported at the group's children, naming the cycle", () => {
    const r = loadInventory(path('cycle.yml'));
    const msgs = r.problems.map(formatProblem);
    expect(msgs.some((m) => /cycle\.yml:5:15: groups\.a\.children: group cycle: a → b → a$/.test(m))).toBe(
      true,
    );
    expect(r.inventory!.groups.get('a')).toEqual(['h1']);
  });

  it('unknown hosts and groups in a group are located, each reported once', () => {
    const f = path('unknown-members.yml');
    const r = loadInventory(f);
    expect(r.problems.map(formatProblem).sort()).toEqual([
      `${f}:5:17: groups.g.hosts[1]: unknown host "ghost"`,
      `${f}:7:19: groups.parent.children[1]: unknown group "nogroup"`,
    ]);
  });

  it('a name that is both a host and a group is refused', () => {
    const r = loadInventoryText('hosts:\n  x: {}\ngroups:\n  x: { hosts: [x] }\n');
    expect(r.problems.map(formatProblem).join('\n')).toMatch(
      /:4:3: groups\.x: "x" is both a host and a group/,
    );
  });

  it('ssh without a user is refused', () => {
    const r = loadInventoryText('hosts:\n  x: { ssh: { host: 10.0.0.1 } }\n');
    expect(r.problems.map(formatProblem).join('\n')).toMatch(/hosts\.x: ssh transport needs ssh\.user/);
  });

  it('an inline password is refused and its value is not echoed', () => {
    const f = path('inline-password.yml');
    const r = loadInventory(f);
    expect(r.inventory).toBeUndefined();
    const text = r.problems.map(formatProblem).join('\n');
    expect(text).toContain(
      `${f}:6:17: hosts.db1.pg.password: expected a secret source: {env: NAME} or {file: PATH}`,
    );
    expect(text).not.toContain('Tr0ub4dor');
    expect(JSON.stringify(r.problems)).not.toContain('Tr0ub4dor');
  });

  it('a host with neither transport nor ssh settings is refused, located at the host', () => {
    const r = loadInventoryText(
      'hosts:\n  ok: { transport: local }\n  bare: {}\n  pg_only:\n    pg: { port: 5432 }\n',
    );
    expect(r.problems.map(formatProblem)).toEqual([
      expect.stringMatching(/:3:9: hosts\.bare: host bare: set transport: local .*, or ssh settings$/),
      expect.stringMatching(/:5:5: hosts\.pg_only: host pg_only: set transport: local .*, or ssh settings$/),
    ]);
  });

  it('transport or ssh settings in defaults, or ssh settings on the host, are explicit enough', () => {
    const viaDefault = loadInventoryText('defaults: { transport: local }\nhosts:\n  a: {}\n');
    expect(viaDefault.problems).toEqual([]);
    expect(viaDefault.inventory!.hosts.get('a')!.transport).toBe('local');
    const viaSsh = loadInventoryText(
      'defaults: { ssh: { user: u } }\nhosts:\n  a: {}\n  b: { transport: local }\n',
    );
    expect(viaSsh.problems).toEqual([]);
    expect(viaSsh.inventory!.hosts.get('a')!.transport).toBe('ssh');
    expect(viaSsh.inventory!.hosts.get('b')!.transport).toBe('local');
    const hostSsh = loadInventoryText('hosts:\n  a: { ssh: { user: u } }\n');
    expect(hostSsh.problems).toEqual([]);
    expect(hostSsh.inventory!.hosts.get('a')!.transport).toBe('ssh');
  });

  it('every shipped and fixture inventory that should load still loads', () => {
    for (const name of ['groups.yml', 'lab.yml', 'secrets.yml', 'two-ssh.yml'])
      expect(loadInventory(path(name)).problems.map(formatProblem)).toEqual([]);
  });

  it('a wrong type elsewhere is still shown (only sensitive paths hide values)', () => {
    const r = loadInventoryText('hosts:\n  x: { pg: { port: "fivefourthreetwo" } }\n');
    expect(r.problems.map(formatProblem).join('\n')).toContain('got string "fivefourthreetwo"');
  });
});

describe('pg TLS settings', () => {
  it('sslmode defaults to prefer; sslrootcert is resolved against the inventory file', () => {
    const r = loadInventoryText(
      'hosts:\n  a: { transport: local, pg: { sslmode: verify-ca, sslrootcert: ./ca.pem } }\n  b: { transport: local, pg: {} }\n',
    );
    expect(r.problems).toEqual([]);
    const a = r.inventory!.hosts.get('a')!.pg!;
    expect(a.sslmode).toBe('verify-ca');
    expect(a.sslrootcert).toBe(join(dirname(r.inventory!.file), 'ca.pem'));
    expect(r.inventory!.hosts.get('b')!.pg).toMatchObject({ sslmode: 'prefer', sslrootcert: undefined });
  });

  it('an unknown sslmode is refused', () => {
    const r = loadInventoryText('hosts:\n  a: { transport: local, pg: { sslmode: allow } }\n');
    expect(r.problems.map(formatProblem).join('\n')).toContain('hosts.a.pg.sslmode');
  });
});

describe('secretEnvNames', () => {
  it('lists every {env} secret source, from defaults and hosts, once and sorted', () => {
    const inv = load('secrets.yml');
    expect(secretEnvNames(inv)).toEqual([
      'PGRB_UNIT_SECRET_ENV',
      'PGRB_UNIT_SECRET_NEVER_SET',
      'PGRB_UNIT_SSH_PASSPHRASE',
    ]);
    // every host carries the inventory-wide list, so local commands of any host drop them all
    expect(inv.hosts.get('from_file')!.secretEnv).toEqual(secretEnvNames(inv));
    expect(secretEnvNames(load('two-ssh.yml'))).toEqual(['PGRB_UNIT_PG_PASSWORD']);
    expect(secretEnvNames(load('groups.yml'))).toEqual([]);
  });
});

describe('resolveSecrets', () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
  });

  it('reads {env} and {file} into Secrets that never print their value', () => {
    process.env.PGRB_UNIT_SECRET_ENV = 'env-s3cret-value';
    const inv = load('secrets.yml');
    const problems = resolveSecrets(inv, ['from_env', 'from_file']);
    expect(problems).toEqual([]);
    const fromEnv = inv.hosts.get('from_env')!.pg!.password!;
    const fromFile = inv.hosts.get('from_file')!.pg!.password!;
    expect(fromEnv).toBeInstanceOf(Secret);
    expect(fromEnv.reveal()).toBe('env-s3cret-value');
    expect(fromEnv.source).toBe('env PGRB_UNIT_SECRET_ENV');
    // the trailing newline of the file is not part of the secret
    expect(fromFile.reveal()).toBe('file-s3cret-value');
    for (const s of [fromEnv, fromFile]) {
      expect(String(s)).toBe('***');
      expect(`${s}`).toBe('***');
      expect(JSON.stringify({ s })).toBe('{"s":"***"}');
      expect(inspect(s)).toBe('***');
      expect(inspect({ nested: { s } }, { depth: 5 })).not.toContain('s3cret');
    }
    expect(inspect(inv.hosts.get('from_env'), { depth: 10 })).not.toContain('env-s3cret-value');
  });

  it('an ssh identity passphrase is a Secret too, and a missing one is located', () => {
    const f = path('secrets.yml');
    const inv = load('secrets.yml');
    expect(resolveSecrets(inv, ['with_key']).map(formatProblem)).toEqual([
      `${f}:18:28: hosts.with_key.ssh.identity_passphrase: environment variable PGRB_UNIT_SSH_PASSPHRASE is not set`,
    ]);
    process.env.PGRB_UNIT_SSH_PASSPHRASE = 'ssh-pass-phrase-0c9e';
    const again = load('secrets.yml');
    expect(resolveSecrets(again, ['with_key'])).toEqual([]);
    const ssh = again.hosts.get('with_key')!.ssh!;
    expect(ssh.passphrase).toBeInstanceOf(Secret);
    expect(ssh.passphrase!.reveal()).toBe('ssh-pass-phrase-0c9e');
    expect(ssh.identityFile).toBe(path('id_unused'));
    expect(JSON.stringify(ssh)).not.toContain('ssh-pass-phrase-0c9e');
  });

  it('only the hosts asked for are resolved', () => {
    const inv = load('secrets.yml');
    expect(resolveSecrets(inv, ['from_file'])).toEqual([]);
    expect(inv.hosts.get('from_env')!.pg!.password).toBeUndefined();
  });

  it('a missing env var and an unreadable file are located problems', () => {
    const f = path('secrets.yml');
    const inv = load('secrets.yml');
    const problems = resolveSecrets(inv, ['missing_env', 'missing_file']).map(formatProblem);
    expect(problems).toEqual([
      `${f}:10:21: hosts.missing_env.pg.password: environment variable PGRB_UNIT_SECRET_NEVER_SET is not set`,
      `${f}:13:21: hosts.missing_file.pg.password: cannot read secret file ./no-such-secret.txt: file not found`,
    ]);
  });

  it('a secret from defaults is reported once at defaults, however many hosts use it', () => {
    const f = path('two-ssh.yml');
    const inv = load('two-ssh.yml');
    delete process.env.PGRB_UNIT_PG_PASSWORD;
    const problems = resolveSecrets(inv, ['db1', 'db2']).map(formatProblem);
    expect(problems).toEqual([
      `${f}:7:47: defaults.pg.password: environment variable PGRB_UNIT_PG_PASSWORD is not set`,
    ]);
  });
});

function loadInventoryText(text: string) {
  const dir = mkdtempSync(join(tmpdir(), 'pgrunbook-inv-'));
  try {
    const f = join(dir, 'inventory.yml');
    writeFileSync(f, text);
    return loadInventory(f);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// Issue 11: credentials in a URL were accepted and printed everywhere.
describe('patroniUrlProblem', () => {
  it('accepts a base URL: http or https, host, port, path', () => {
    for (const u of ['http://127.0.0.1:8008', 'https://db1.internal:8008/', 'http://[::1]:8008/api'])
      expect(patroniUrlProblem(u)).toBeUndefined();
  });

  it('refuses credentials, pointing at the secret mechanism and never quoting them', () => {
    for (const u of [
      'http://u:pw-zz91@127.0.0.1:8008',
      'http://u@127.0.0.1:8008',
      'https://:pw-zz91@127.0.0.1',
      'http://u:pw-zz91@@127.0.0.1',
    ]) {
      const msg = patroniUrlProblem(u);
      expect(msg, u).toMatch(
        /credentials in the URL are refused.*patroni\.password as \{env: NAME\} or \{file: PATH\}/,
      );
      expect(msg).not.toContain('pw-zz91');
    }
  });

  it('refuses what is not an http(s) base URL, without quoting it', () => {
    for (const u of [
      '127.0.0.1:8008',
      'ftp://h/',
      'file:///etc/passwd',
      'http://h/?token=pw-zz91',
      'http://h/#pw-zz91',
      'not a url',
    ]) {
      const msg = patroniUrlProblem(u);
      expect(msg, u).toBeDefined();
      expect(msg).not.toContain('pw-zz91');
    }
  });
});

// Issue 15: the run lock lives in etcd or in Consul, whichever DCS the cluster uses.
describe('patroni.dcs', () => {
  const host = (dcs: string) =>
    `hosts:\n  db1:\n    transport: local\n    patroni:\n      url: http://127.0.0.1:8008\n      dcs: ${dcs}\n`;

  it('etcd3 or consul, with the default lock_ttl of each (Consul: twice its 10 s minimum session TTL)', () => {
    const e = loadInventoryText(host('{ etcd3: "http://127.0.0.1:2379", scope: pg }'));
    expect(e.problems.map(formatProblem)).toEqual([]);
    expect(e.inventory!.hosts.get('db1')!.patroni!.dcs).toEqual({
      kind: 'etcd3',
      url: 'http://127.0.0.1:2379',
      scope: 'pg',
      lockTtlS: 15,
    });
    const c = loadInventoryText(host('{ consul: "http://127.0.0.1:8500", scope: pg }'));
    expect(c.problems.map(formatProblem)).toEqual([]);
    expect(c.inventory!.hosts.get('db1')!.patroni!.dcs).toEqual({
      kind: 'consul',
      url: 'http://127.0.0.1:8500',
      scope: 'pg',
      lockTtlS: 20,
    });
    const t = loadInventoryText(host('{ consul: "https://127.0.0.1:8501", scope: pg, lock_ttl: 30 }'));
    expect(t.inventory!.hosts.get('db1')!.patroni!.dcs?.lockTtlS).toBe(30);
  });

  it('exactly one of them, reported at patroni.dcs with its location', () => {
    const both = loadInventoryText(
      host('{ etcd3: "http://127.0.0.1:2379", consul: "http://127.0.0.1:8500", scope: pg }'),
    );
    expect(both.problems.map((p) => `${p.line}:${p.col}: ${p.path}: ${p.message}`)).toEqual([
      '6:12: hosts.db1.patroni.dcs: give one DCS, etcd3 or consul, not both: the lock lives where the cluster keeps its state',
    ]);
    const none = loadInventoryText(host('{ scope: pg }'));
    expect(none.problems.map((p) => `${p.path}: ${p.message}`)).toEqual([
      'hosts.db1.patroni.dcs: name the DCS the cluster uses: etcd3: URL or consul: URL',
    ]);
  });

  it('with consul the scope is allowlisted (it names a Consul key in a URL path): no .., no slash', () => {
    for (const scope of ['..', '.', 'a/b', '"a b"', '"../../v1/agent"', '"x?y"'])
      expect(
        loadInventoryText(host(`{ consul: "http://127.0.0.1:8500", scope: ${scope} }`)).problems.map(
          (p) => p.path,
        ),
        scope,
      ).toEqual(['hosts.db1.patroni.dcs.scope']);
    for (const scope of ['pg-main', 'pg_main.v2', '..x'])
      expect(
        loadInventoryText(host(`{ consul: "http://127.0.0.1:8500", scope: ${scope} }`)).problems,
        scope,
      ).toEqual([]);
  });

  it("token is Consul's ACL token, from a secret source: refused with etcd3 and when inline", () => {
    const e = loadInventoryText(host('{ etcd3: "http://127.0.0.1:2379", scope: pg, token: { env: T } }'));
    expect(e.problems.map((p) => `${p.path}: ${p.message}`)).toEqual([
      "hosts.db1.patroni.dcs.token: token is Consul's ACL token: it goes with consul: URL (etcd authentication is not supported)",
    ]);
    const inline = loadInventoryText(host('{ consul: "http://127.0.0.1:8500", scope: pg, token: tok-77zq }'));
    expect(inline.problems.map((p) => p.path)).toEqual(['hosts.db1.patroni.dcs.token']);
    expect(inline.problems.map(formatProblem).join('\n')).not.toContain('tok-77zq');
    const ok = loadInventoryText(
      host('{ consul: "http://127.0.0.1:8500", scope: pg, token: { env: PGRB_UNIT_CONSUL_T } }'),
    );
    expect(ok.problems).toEqual([]);
    expect(secretEnvNames(ok.inventory!)).toContain('PGRB_UNIT_CONSUL_T');
    process.env.PGRB_UNIT_CONSUL_T = 'tok-4411';
    try {
      expect(resolveSecrets(ok.inventory!, ['db1'])).toEqual([]);
      const t = ok.inventory!.hosts.get('db1')!.patroni!.dcs!.token!;
      expect(t.reveal()).toBe('tok-4411');
      expect(String(t)).not.toContain('tok-4411');
    } finally {
      delete process.env.PGRB_UNIT_CONSUL_T;
    }
  });

  it('a DCS URL is a base URL only: no credentials, path, query or other scheme, never quoted', () => {
    for (const kind of ['etcd3', 'consul'])
      for (const u of [
        'http://tok-77zq@127.0.0.1:8500',
        'http://127.0.0.1:8500/v1/kv',
        'http://127.0.0.1:8500?token=tok-77zq',
        'http://127.0.0.1:8500#tok-77zq',
        'consul://127.0.0.1:8500',
        '127.0.0.1:8500',
        'http://127.0.0.1:8500 ',
      ]) {
        const r = loadInventoryText(host(`{ ${kind}: "${u}", scope: pg }`));
        expect(r.problems.length, u).toBe(1);
        expect(r.problems[0]!.path, u).toBe(`hosts.db1.patroni.dcs.${kind}`);
        expect(formatProblem(r.problems[0]!)).not.toContain('tok-77zq');
      }
    for (const u of ['http://consul.service.internal:8500', 'https://[::1]:8501', 'http://localhost'])
      expect(loadInventoryText(host(`{ consul: "${u}", scope: pg }`)).problems, u).toEqual([]);
  });
});
