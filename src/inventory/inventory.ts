// Loads an inventory file into resolved hosts and groups, with every problem located.
import { homedir } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { GcpSettings } from '../connections/gcp-settings.js';
import type { DcsSettings, PatroniSettings } from '../connections/patroni.js';
import type { PgSettings } from '../connections/pg.js';
import type { SshSettings } from '../connections/ssh.js';
import type { Problem } from '../errors.js';
import { loadSource, type SourceDoc } from '../playbook/load.js';
import { FileReadError, readRegularText } from '../util/read-file.js';
import { schemaProblems } from '../util/schema-errors.js';
import { Secret } from '../util/secret.js';
import { type HostFile, type InventoryFile, InventorySchema, type SecretSourceFile } from './schema.js';

/** The largest secret or key file read: a secret is short; this only stops a runaway read. */
const MAX_SECRET_FILE_BYTES = 1024 * 1024;

/** A host with its connection settings merged from defaults and its groups' vars applied. */
export interface InventoryHost {
  name: string;
  transport: 'local' | 'ssh';
  /** SSH settings without secrets resolved (see `resolveSecrets`). */
  ssh?: SshSettings & { passphraseSource?: SecretSourceFile };
  become?: 'sudo';
  pg?: Omit<PgSettings, 'password'> & {
    passwordSource?: SecretSourceFile;
    password?: Secret;
    /** The role of physical replication connections, when not `user` (and its own password). */
    replicationUser?: string;
    replicationPasswordSource?: SecretSourceFile;
    replicationPassword?: Secret;
  };
  /** Patroni REST API of this member; the password is resolved with the other secrets. */
  patroni?: Omit<PatroniSettings, 'password'> & { passwordSource?: SecretSourceFile; password?: Secret };
  /** PgBouncer's admin console on this host (pgbouncer.* steps); `database` is always pgbouncer. */
  pgbouncer?: Omit<PgSettings, 'password'> & {
    passwordSource?: SecretSourceFile;
    password?: Secret;
    /** its pidfile on the host, when the inventory names one (else SHOW CONFIG's) */
    pidfile?: string;
  };
  /** The Compute Engine instance the host is (for gcp.* steps). */
  gcp?: GcpSettings;
  /** Variables: inventory vars < group vars (parents before children) < host vars. */
  vars: Record<string, unknown>;
  groups: string[];
  /**
   * Environment variables the inventory reads secrets from (every host's, see `secretEnvNames`):
   * commands run on this machine do not inherit them.
   */
  secretEnv?: readonly string[];
}

/** The group of PgBouncer hosts, derived from `pgbouncer:` settings unless the file defines it. */
export const PGBOUNCERS = 'pgbouncers';

/** Groups filled at run start from the Patroni REST API (see src/engine/patroni-groups.ts). */
export const DYNAMIC_GROUPS: readonly string[] = ['patroni_leader', 'patroni_replicas'];

/** A loaded inventory. */
export interface Inventory {
  file: string;
  doc: SourceDoc;
  hosts: Map<string, InventoryHost>;
  /** Group name → host names (children expanded), in inventory order. */
  groups: Map<string, string[]>;
  /** Names of the environment variables any secret source reads (`{env: NAME}`), sorted. */
  secretEnvNames: string[];
  /**
   * Dynamic groups once resolved (also entered in `groups`). Before that, a pattern naming one
   * matches every host with Patroni settings: the candidates.
   */
  dynamic?: PatroniGroups;
}

/** What resolving the Patroni groups found: per cluster, the leader and the replicas. */
export interface PatroniGroups {
  at: string;
  clusters: {
    scope: string;
    leader?: string;
    timeline?: number;
    replicas: string[];
    unknownMembers: string[];
  }[];
  groups: Record<string, string[]>;
}

/** How deep groups may nest through `children`: far beyond any real inventory, and a bound on recursion. */
export const MAX_GROUP_DEPTH = 64;

const expandHome = (p: string, base: string) =>
  p.startsWith('~/') ? resolve(homedir(), p.slice(2)) : isAbsolute(p) ? p : resolve(base, p);

/** Loads and validates an inventory; problems are returned, never thrown. */
export function loadInventory(file: string): { inventory?: Inventory; problems: Problem[] } {
  const { doc, problems } = loadSource(file);
  if (!doc) return { problems };
  const raw = doc.value;
  const schemaIssues = schemaProblems(InventorySchema, raw, doc, []);
  if (schemaIssues.length > 0) return { problems: schemaIssues };
  const inv = raw as InventoryFile;
  const base = dirname(resolve(file));
  const out: Problem[] = [];

  const groupDefs = inv.groups ?? {};
  // References are checked once per place they are written, not once per path that reaches them.
  for (const [g, def] of Object.entries(groupDefs)) {
    if (DYNAMIC_GROUPS.includes(g))
      out.push(
        doc.problem(['groups', g], `"${g}" is a dynamic group, resolved from Patroni at run start`, {
          key: true,
        }),
      );
    if (inv.hosts[g])
      out.push(doc.problem(['groups', g], `"${g}" is both a host and a group`, { key: true }));
    (def.hosts ?? []).forEach((h, i) => {
      if (!inv.hosts[h]) out.push(doc.problem(['groups', g, 'hosts', i], `unknown host "${h}"`));
    });
    (def.children ?? []).forEach((c, i) => {
      if (!groupDefs[c]) out.push(doc.problem(['groups', g, 'children', i], `unknown group "${c}"`));
    });
  }
  const groups = new Map<string, string[]>();
  const cycles = new Set<string>();
  // Levels of groups below each group through children (0: none). The lowest group found with
  // MAX_GROUP_DEPTH levels below it is the problem; recursion stops there too, so a chain of
  // thousands of groups is one located problem, not a stack overflow or a quadratic walk.
  const below = new Map<string, number>();
  let tooDeep = false;
  const expand = (g: string, trail: string[]): string[] => {
    const cached = groups.get(g);
    if (cached) return cached;
    if (trail.includes(g)) {
      const cycle = [...trail.slice(trail.indexOf(g)), g];
      const key = [...new Set(cycle)].sort().join(',');
      if (!cycles.has(key)) {
        cycles.add(key);
        out.push(doc.problem(['groups', g, 'children'], `group cycle: ${cycle.join(' → ')}`));
      }
      return [];
    }
    // Deeper than the limit from here: the group above it gets the problem.
    if (trail.length >= MAX_GROUP_DEPTH) {
      below.set(g, MAX_GROUP_DEPTH - 1);
      return [];
    }
    const def = groupDefs[g]!;
    const names = (def.hosts ?? []).filter((h) => inv.hosts[h]);
    let levels = 0;
    let deepChild = false;
    for (const c of def.children ?? [])
      if (groupDefs[c]) {
        for (const h of expand(c, [...trail, g])) names.push(h);
        const l = below.get(c) ?? 0;
        levels = Math.max(levels, 1 + l);
        if (l >= MAX_GROUP_DEPTH) deepChild = true;
      }
    below.set(g, levels);
    // One problem for the file, like the other size limits: written top-down, a long chain is
    // met again at every MAX_GROUP_DEPTH groups.
    if (levels >= MAX_GROUP_DEPTH && !deepChild && !tooDeep) {
      tooDeep = true;
      out.push(
        doc.problem(
          ['groups', g, 'children'],
          `groups nested more than ${MAX_GROUP_DEPTH} levels deep through children (limit ${MAX_GROUP_DEPTH})`,
        ),
      );
    }
    const result = [...new Set(names)];
    if (trail.length === 0 || !trail.includes(g)) groups.set(g, result);
    return result;
  };
  for (const g of Object.keys(groupDefs)) expand(g, []);
  // Ansible's order: a child group's vars override its parents'; file order breaks ties.
  const depth = new Map<string, number>();
  // Parents of each group, in file order, found once (not by a scan of every group per group).
  const parentsOf = new Map<string, string[]>();
  for (const [p, d] of Object.entries(groupDefs))
    for (const c of new Set(d.children ?? [])) {
      const list = parentsOf.get(c);
      if (list) list.push(p);
      else parentsOf.set(c, [p]);
    }
  const depthOf = (g: string, seen: string[] = []): number => {
    if (depth.has(g)) return depth.get(g)!;
    if (seen.includes(g) || seen.length >= MAX_GROUP_DEPTH) return 0;
    const parents = parentsOf.get(g) ?? [];
    const d = parents.length ? 1 + Math.max(...parents.map((p) => depthOf(p, [...seen, g]))) : 0;
    depth.set(g, d);
    return d;
  };
  const groupOrder = Object.keys(groupDefs)
    .map((g, i) => ({ g, i, d: depthOf(g) }))
    .sort((a, b) => a.d - b.d || a.i - b.i)
    .map((x) => x.g);

  const secretEnv = secretEnvNamesOf(inv);
  const hosts = new Map<string, InventoryHost>();
  // Each host's groups in file order, and in the order their vars apply: found by one pass over
  // the groups, not a search of every group for every host.
  const memberships = (order: string[]) => {
    const by = new Map<string, string[]>();
    for (const g of order)
      for (const h of groups.get(g) ?? []) {
        const list = by.get(h);
        if (list) list.push(g);
        else by.set(h, [g]);
      }
    return by;
  };
  const inFileOrder = memberships(Object.keys(groupDefs));
  const inVarsOrder = memberships(groupOrder);
  for (const [name, h] of Object.entries(inv.hosts)) {
    const memberOf = inFileOrder.get(name) ?? [];
    const vars: Record<string, unknown> = { ...(inv.vars ?? {}) };
    for (const g of inVarsOrder.get(name) ?? []) Object.assign(vars, groupDefs[g]?.vars ?? {});
    Object.assign(vars, h.vars ?? {});
    const host = resolveHost(name, h ?? {}, inv, base, doc, out);
    hosts.set(name, { ...host, vars, groups: memberOf, secretEnv });
  }
  // `pgbouncers`, unless the file defines it: every host with pgbouncer settings, possibly none, so
  // that a playbook can pause the poolers of any inventory (an upgrade's) without a group to write.
  if (!groups.has(PGBOUNCERS)) {
    const members = [...hosts.values()].filter((h) => h.pgbouncer).map((h) => h.name);
    groups.set(PGBOUNCERS, members);
    for (const n of members) hosts.get(n)?.groups.push(PGBOUNCERS);
  }
  return { inventory: { file, doc, hosts, groups, secretEnvNames: secretEnv }, problems: out };
}

/** Every `{env: NAME}` secret source of an inventory file, wherever it is written. */
function secretEnvNamesOf(inv: InventoryFile): string[] {
  const names = new Set<string>();
  const add = (src: SecretSourceFile | undefined) => {
    if (src && 'env' in src) names.add(src.env);
  };
  const d = inv.defaults ?? {};
  add(d.ssh?.identity_passphrase);
  add(d.pg?.password);
  add(d.pg?.replication_password);
  for (const h of Object.values(inv.hosts)) {
    add(h?.ssh?.identity_passphrase);
    add(h?.pg?.password);
    add(h?.pg?.replication_password);
    add(h?.patroni?.password);
    add(h?.patroni?.dcs?.token);
    add(h?.pgbouncer?.password);
  }
  return [...names].sort();
}

/**
 * Names of the environment variables the inventory takes secrets from: whoever starts local
 * commands strips them from the child's environment (see LocalTransport).
 */
export function secretEnvNames(inventory: Inventory): string[] {
  return [...inventory.secretEnvNames];
}

function resolveHost(
  name: string,
  h: HostFile,
  inv: InventoryFile,
  base: string,
  doc: SourceDoc,
  out: Problem[],
): Omit<InventoryHost, 'vars' | 'groups'> {
  const d = inv.defaults ?? {};
  // Never guessed: a host without any connection settings would silently run on this machine.
  const transport = h.transport ?? d.transport ?? (h.ssh || d.ssh ? 'ssh' : undefined);
  if (!transport)
    out.push(
      doc.problem(
        ['hosts', name],
        `host ${name}: set transport: local (to run its commands on this machine), or ssh settings`,
      ),
    );
  const become = h.become ?? d.become;
  let ssh: InventoryHost['ssh'];
  if (transport === 'ssh') {
    const s = { ...(d.ssh ?? {}), ...(h.ssh ?? {}) };
    if (!s.user)
      out.push(doc.problem(['hosts', name], 'ssh transport needs ssh.user (on the host or in defaults.ssh)'));
    ssh = {
      hostName: name,
      host: s.host ?? name,
      port: s.port ?? 22,
      user: s.user ?? '',
      identityFile: s.identity_file ? expandHome(s.identity_file, base) : undefined,
      passphraseSource: s.identity_passphrase,
      knownHostsFile: expandHome(s.known_hosts ?? '~/.ssh/known_hosts', base),
      hostKey: s.host_key,
      acceptUnknownHostKey: s.accept_unknown_host_key ?? false,
      connectTimeoutMs: (s.connect_timeout ?? 15) * 1000,
      keepaliveIntervalMs: (s.keepalive_interval ?? 15) * 1000,
      maxChannels: s.max_channels ?? 8,
    };
  }
  let pg: InventoryHost['pg'];
  if (h.pg || d.pg) {
    const p = { ...(d.pg ?? {}), ...(h.pg ?? {}) };
    pg = {
      host: p.host ?? ssh?.host ?? '127.0.0.1',
      port: p.port ?? 5432,
      user: p.user ?? 'postgres',
      database: p.database ?? 'postgres',
      sslmode: (p.sslmode ?? 'prefer') as PgSettings['sslmode'],
      sslrootcert: p.sslrootcert ? expandHome(p.sslrootcert, base) : undefined,
      passwordSource: p.password,
      replicationUser: p.replication_user,
      replicationPasswordSource: p.replication_password,
    };
  }
  let patroni: InventoryHost['patroni'];
  if (h.patroni) {
    const p = h.patroni;
    const bad = patroniUrlProblem(p.url);
    if (bad) out.push(doc.problem(['hosts', name, 'patroni', 'url'], bad));
    const file = (f?: string) => (f ? expandHome(f, base) : undefined);
    patroni = {
      url: p.url.replace(/\/+$/, ''),
      username: p.username,
      passwordSource: p.password,
      caFile: file(p.ca_file),
      certFile: file(p.cert_file),
      keyFile: file(p.key_file),
      timeoutMs: (p.timeout ?? 5) * 1000,
      member: p.member ?? name,
      config: p.config,
      patronictl: p.patronictl ?? 'patronictl',
      dcs: p.dcs && dcsOf(p.dcs),
    };
    for (const k of ['etcd3', 'consul'] as const) {
      const u = p.dcs?.[k];
      const why = u === undefined ? undefined : dcsUrlProblem(u);
      if (why) out.push(doc.problem(['hosts', name, 'patroni', 'dcs', k], why));
    }
    // The scope becomes a segment of a Consul KV URL path: an allowlist, and never `.`/`..`, which
    // a URL resolves (even percent-encoded) to another key.
    if (p.dcs?.consul !== undefined && !CONSUL_SCOPE.test(p.dcs.scope))
      out.push(
        doc.problem(
          ['hosts', name, 'patroni', 'dcs', 'scope'],
          'with consul the scope must be letters, digits and . _ - (not . or .. alone), as it names a Consul key',
        ),
      );
    if (p.dcs?.token && p.dcs.consul === undefined)
      out.push(
        doc.problem(
          ['hosts', name, 'patroni', 'dcs', 'token'],
          "token is Consul's ACL token: it goes with consul: URL (etcd authentication is not supported)",
        ),
      );
    // Exactly one DCS: the lock must live where Patroni itself keeps the cluster's state.
    if (p.dcs && (p.dcs.etcd3 === undefined) === (p.dcs.consul === undefined))
      out.push(
        doc.problem(
          ['hosts', name, 'patroni', 'dcs'],
          p.dcs.etcd3 === undefined
            ? 'name the DCS the cluster uses: etcd3: URL or consul: URL'
            : 'give one DCS, etcd3 or consul, not both: the lock lives where the cluster keeps its state',
        ),
      );
  }
  let pgbouncer: InventoryHost['pgbouncer'];
  if (h.pgbouncer) {
    const b = h.pgbouncer;
    pgbouncer = {
      host: b.host ?? ssh?.host ?? '127.0.0.1',
      port: b.port ?? 6432,
      user: b.user ?? 'pgbouncer',
      // The admin console is the virtual database `pgbouncer`.
      database: 'pgbouncer',
      sslmode: (b.sslmode ?? 'prefer') as PgSettings['sslmode'],
      sslrootcert: b.sslrootcert ? expandHome(b.sslrootcert, base) : undefined,
      passwordSource: b.password,
      pidfile: b.pidfile,
    };
  }
  let gcp: InventoryHost['gcp'];
  if (h.gcp || d.gcp) {
    const g = { ...(d.gcp ?? {}), ...(h.gcp ?? {}) };
    if (!g.project)
      out.push(
        doc.problem(['hosts', name], 'gcp settings need gcp.project (on the host or in defaults.gcp)'),
      );
    if (!g.zone && !g.disks?.every((x) => x.zone || x.region))
      out.push(doc.problem(['hosts', name], 'gcp settings need gcp.zone (the instance zone)'));
    const c = g.credentials;
    gcp = {
      project: g.project ?? '',
      zone: g.zone,
      instance: g.instance ?? name,
      disks: g.disks?.map((x) => ({
        name: x.name,
        zone: x.region ? undefined : (x.zone ?? g.zone),
        region: x.region,
        deviceName: x.device_name,
        pgdata: x.pgdata,
      })),
      credentials: !c
        ? g.endpoint
          ? { kind: 'none' }
          : { kind: 'adc' }
        : 'impersonate' in c
          ? {
              kind: 'impersonate',
              target: c.impersonate,
              keyFile: c.key_file && expandHome(c.key_file, base),
            }
          : 'key_file' in c
            ? { kind: 'key_file', path: expandHome(c.key_file, base) }
            : { kind: 'adc' },
      endpoint: g.endpoint && {
        host: g.endpoint.host,
        port: g.endpoint.port,
        protocol: g.endpoint.protocol ?? 'https',
      },
      timeoutMs: (g.timeout ?? 60) * 1000,
    };
  }
  return { name, transport: transport ?? 'local', ssh, become, pg, patroni, pgbouncer, gcp };
}

/** A Patroni scope usable as a Consul key segment. */
const CONSUL_SCOPE = /^(?!\.{1,2}$)[A-Za-z0-9_.-]{1,200}$/;

/** A DCS base URL, allowlisted: http(s), a host name, IPv4 or [IPv6] address, an optional port. */
const DCS_URL = /^https?:\/\/([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$/;

/**
 * What is wrong with a DCS URL (etcd3, consul), if anything; never quotes it, which may hold a
 * token or password.
 */
export function dcsUrlProblem(url: string): string | undefined {
  if (DCS_URL.test(url) && isOwnOrigin(url)) return undefined;
  if (/^[a-z]+:\/\/[^/?#]*@/i.test(url))
    return 'credentials in the URL are refused (they would be printed wherever the URL is): give the base URL only, http://HOST:PORT';
  return 'expected the base URL only, http://HOST:PORT or https://HOST:PORT (a host name or IP address; no path, query or credentials)';
}

/**
 * True when the URL parser reads `url` as exactly its own origin: a port in range, and a host it
 * does not rewrite (`127.1` → `127.0.0.1`, `x..y`, a default port dropped), so that the address
 * printed is the address connected to.
 */
function isOwnOrigin(url: string): boolean {
  try {
    const u = new URL(url);
    return url === `${u.protocol}//${u.host}` && !u.hostname.includes('..');
  } catch {
    return false;
  }
}

/** The lock's DCS from the inventory's `patroni.dcs` (exactly one of etcd3 and consul, checked by the caller). */
function dcsOf(d: NonNullable<NonNullable<HostFile['patroni']>['dcs']>): DcsSettings {
  const kind = d.consul !== undefined ? 'consul' : 'etcd3';
  return {
    kind,
    url: (kind === 'consul' ? d.consul : d.etcd3) ?? '',
    scope: d.scope,
    lockTtlS: d.lock_ttl ?? (kind === 'consul' ? 20 : 15),
    tokenSource: d.token,
  };
}

/**
 * What is wrong with a Patroni REST API URL, if anything; never quotes the URL, which may hold a
 * password. Allowed: http or https, a host, an optional port and path; nothing else.
 */
export function patroniUrlProblem(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'not a URL: expected http://HOST:PORT or https://HOST:PORT';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    return `scheme ${JSON.stringify(u.protocol.replace(/:$/, '')).slice(0, 20)} refused: expected http or https`;
  if (u.username || u.password || /^[a-z]+:\/\/[^/?#]*@/i.test(url))
    return (
      'credentials in the URL are refused (they would be printed wherever the URL is): ' +
      'put the user in patroni.username and the password in patroni.password as {env: NAME} or {file: PATH} (docs/security.md#secrets)'
    );
  if (!u.hostname) return 'no host in the URL';
  if (u.search || u.hash) return 'a query or fragment in the URL is refused: give the base URL only';
  return undefined;
}

/** Reads every secret the hosts need; a missing variable or unreadable file is a problem. */
export function resolveSecrets(inventory: Inventory, hostNames: readonly string[]): Problem[] {
  const out: Problem[] = [];
  const base = dirname(resolve(inventory.file));
  const cache = new Map<string, Secret | undefined>();
  const read = (src: SecretSourceFile, path: (string | number)[]): Secret | undefined => {
    const key = path.join('.');
    if (cache.has(key)) return cache.get(key);
    const v = readOnce(src, path);
    cache.set(key, v);
    return v;
  };
  const readOnce = (src: SecretSourceFile, path: (string | number)[]): Secret | undefined => {
    if ('env' in src) {
      const v = process.env[src.env];
      if (v === undefined)
        out.push(inventory.doc.problem(path, `environment variable ${src.env} is not set`));
      return v === undefined ? undefined : new Secret(v, `env ${src.env}`);
    }
    try {
      return new Secret(
        readRegularText(expandHome(src.file, base), MAX_SECRET_FILE_BYTES).replace(/\r?\n$/, ''),
        `file ${src.file}`,
      );
    } catch (err) {
      if (!(err instanceof FileReadError)) throw err;
      out.push(inventory.doc.problem(path, `cannot read secret file ${src.file}: ${err.reason}`));
      return undefined;
    }
  };
  for (const name of hostNames) {
    const h = inventory.hosts.get(name);
    if (h?.ssh?.passphraseSource && !h.ssh.passphrase) {
      const own = (inventory.doc.value as InventoryFile).hosts[name]?.ssh?.identity_passphrase;
      h.ssh.passphrase = read(
        h.ssh.passphraseSource,
        own ? ['hosts', name, 'ssh', 'identity_passphrase'] : ['defaults', 'ssh', 'identity_passphrase'],
      );
    }
    if (h?.patroni?.passwordSource && !h.patroni.password) {
      h.patroni.password = read(h.patroni.passwordSource, ['hosts', name, 'patroni', 'password']);
    }
    const dcs = h?.patroni?.dcs;
    if (dcs?.tokenSource && !dcs.token) {
      dcs.token = read(dcs.tokenSource, ['hosts', name, 'patroni', 'dcs', 'token']);
    }
    if (h?.pgbouncer?.passwordSource && !h.pgbouncer.password) {
      h.pgbouncer.password = read(h.pgbouncer.passwordSource, ['hosts', name, 'pgbouncer', 'password']);
    }
    const c = h?.gcp?.credentials;
    const keyFile = c?.kind === 'key_file' ? c.path : c?.kind === 'impersonate' ? c.keyFile : undefined;
    const keyProblem = registerKeyFileSecrets(keyFile);
    if (keyProblem) out.push(inventory.doc.problem(['hosts', name, 'gcp', 'credentials'], keyProblem));
    if (h?.pg?.passwordSource && !h.pg.password) {
      const where = (inventory.doc.value as InventoryFile).hosts[name]?.pg?.password
        ? ['hosts', name, 'pg', 'password']
        : ['defaults', 'pg', 'password'];
      h.pg.password = read(h.pg.passwordSource, where);
    }
    if (h?.pg?.replicationPasswordSource && !h.pg.replicationPassword) {
      const where = (inventory.doc.value as InventoryFile).hosts[name]?.pg?.replication_password
        ? ['hosts', name, 'pg', 'replication_password']
        : ['defaults', 'pg', 'replication_password'];
      h.pg.replicationPassword = read(h.pg.replicationPasswordSource, where);
    }
  }
  return out;
}

/**
 * A service-account key file is read by the Google client, never by us; its private parts are
 * still registered as secrets so that no output, journal or report can show them.
 */
function registerKeyFileSecrets(path: string | undefined): string | undefined {
  if (!path) return;
  let key: unknown;
  try {
    key = JSON.parse(readRegularText(path, MAX_SECRET_FILE_BYTES));
  } catch (err) {
    // The Google client reports a missing or malformed key file when it needs it; a FIFO or a
    // device would hang it (and us) instead, and a huge file is not a key.
    if (err instanceof FileReadError && err.reason !== 'file not found')
      return `cannot read key file ${path}: ${err.reason}`;
    return;
  }
  if (!key || typeof key !== 'object') return;
  const k = key as Record<string, unknown>;
  for (const field of ['private_key', 'private_key_id', 'client_secret', 'refresh_token'])
    if (typeof k[field] === 'string' && k[field]) new Secret(k[field] as string, `gcp key file ${field}`);
}
