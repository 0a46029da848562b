// The inventory the blue-green playbooks read, for a test or benchmark's clusters: blue's members
// (a running Patroni cluster, reached over TCP with the superuser's and replicator's passwords from
// BLUE_PG_PW and BLUE_REPL_PW), green's (a deferred cluster: its patroni.yml files, its service
// scripts), and a PgBouncer host when there is one (its admin password from PGB_ADMIN). Every host
// is reached over the private sshd as the server user.

import { SERVER_USER } from './osuser.js';
import type { PatroniCluster } from './patroni.js';
import { pgBinDir } from './postgres.js';
import type { SshServer } from './sshd.js';

export interface BlueGreenInventoryOptions {
  blue: PatroniCluster;
  green: PatroniCluster;
  sshd: SshServer;
  /** PgBouncer's port and its admin console's user, when the clients go through one */
  pooler?: { port: number; adminUser: string };
  /** more inventory vars, as YAML lines (`name: value`) */
  vars?: string[];
}

/** The environment the inventory's secrets are read from. */
export const blueGreenSecrets = (blue: PatroniCluster, poolerAdminPassword?: string) => ({
  BLUE_PG_PW: blue.superuser.password,
  BLUE_REPL_PW: blue.replication.password,
  ...(poolerAdminPassword ? { PGB_ADMIN: poolerAdminPassword } : {}),
});

export function blueGreenInventory(o: BlueGreenInventoryOptions): string {
  const { sshd } = o;
  const ssh = `ssh: { host: 127.0.0.1, port: ${sshd.port}, user: ${SERVER_USER}, identity_file: ${sshd.identityFile}, known_hosts: ${sshd.knownHostsFile} }`;
  const blues = o.blue.members.map(
    (m) => `  blue-${m.name}:
    ${ssh}
    pg: { host: 127.0.0.1, port: ${m.pgPort}, user: postgres, sslmode: disable, password: { env: BLUE_PG_PW }, replication_user: replicator, replication_password: { env: BLUE_REPL_PW } }
    patroni: { url: "${m.restUrl}", timeout: 2, config: ${m.configFile}, member: ${m.name} }
    vars: { pgdata: ${m.dataDir}, pg_socket_dir: ${m.socketDir} }`,
  );
  const greens = o.green.members.map(
    (m) => `  green-${m.name}:
    ${ssh}
    pg: { host: ${m.socketDir}, port: ${m.pgPort}, user: postgres, sslmode: disable }
    patroni: { url: "${m.restUrl}", timeout: 2, config: ${m.configFile}, member: ${m.name} }
    vars:
      pgdata_new: ${m.dataDir}
      pgdata_copy: ${m.memberDir}/data13
      pg_socket_dir: ${m.socketDir}
      pg_client_host: 127.0.0.1
      patroni_start_command: ${m.serviceScript} start
      patroni_stop_command: ${m.serviceScript} stop`,
  );
  const pooler = o.pooler
    ? [
        `  bouncer:
    ${ssh}
    pgbouncer: { host: 127.0.0.1, port: ${o.pooler.port}, user: ${o.pooler.adminUser}, password: { env: PGB_ADMIN }, sslmode: disable }`,
      ]
    : [];
  return `vars:
  pg_bin_old: ${pgBinDir(13)}
  pg_bin_new: ${pgBinDir(15)}
  pg_os_user: ${SERVER_USER}
${(o.vars ?? []).map((v) => `  ${v}\n`).join('')}hosts:
${[...blues, ...greens, ...pooler].join('\n')}
groups:
  blue: { hosts: [${o.blue.members.map((m) => `blue-${m.name}`).join(', ')}] }
  green: { hosts: [${o.green.members.map((m) => `green-${m.name}`).join(', ')}] }
`;
}
