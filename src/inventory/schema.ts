// The inventory file's schema: the one source of its TypeScript types and of inventory.schema.json.
import { type Static, Type } from '@sinclair/typebox';

const Vars = Type.Record(Type.String(), Type.Unknown(), { description: 'variables, available in templates' });

/** Where a secret comes from: never the inventory file itself. */
export const SecretSource = Type.Union(
  [
    Type.Object({ env: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
    Type.Object({ file: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
  ],
  { description: 'a secret source: {env: NAME} or {file: PATH}' },
);

/** SSH connection settings of a host (or the defaults for all hosts). */
export const SshSchema = Type.Object(
  {
    host: Type.Optional(
      Type.String({ minLength: 1, description: 'address to connect to (default: the host name)' }),
    ),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    user: Type.Optional(Type.String({ minLength: 1 })),
    identity_file: Type.Optional(Type.String({ minLength: 1 })),
    identity_passphrase: Type.Optional(SecretSource),
    known_hosts: Type.Optional(
      Type.String({ minLength: 1, description: 'known_hosts file (default ~/.ssh/known_hosts)' }),
    ),
    host_key: Type.Optional(
      Type.String({
        pattern: '^SHA256:[A-Za-z0-9+/]{43}$',
        description: 'a fingerprint like SHA256:<43 base64 characters>',
      }),
    ),
    accept_unknown_host_key: Type.Optional(
      Type.Boolean({
        description:
          'trust a host absent from known_hosts (a changed key is still refused; the known_hosts file must exist and be readable)',
      }),
    ),
    connect_timeout: Type.Optional(Type.Number({ minimum: 1, description: 'seconds' })),
    keepalive_interval: Type.Optional(Type.Number({ minimum: 1, description: 'seconds' })),
    max_channels: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 64,
        description:
          "concurrent commands per connection (default 8); keep it below the server's MaxSessions (OpenSSH: 10): cancelling a command needs one more channel",
      }),
    ),
  },
  { additionalProperties: false },
);

/** PostgreSQL connection settings of a host. */
export const PgSchema = Type.Object(
  {
    host: Type.Optional(Type.String({ minLength: 1 })),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    user: Type.Optional(Type.String({ minLength: 1 })),
    database: Type.Optional(Type.String({ minLength: 1 })),
    sslmode: Type.Optional(
      Type.Union(
        ['disable', 'prefer', 'require', 'verify-ca', 'verify-full'].map((m) => Type.Literal(m)),
        {
          description:
            "libpq's modes (default prefer): disable = no TLS; prefer = TLS if the server offers it, else plain; " +
            'require = TLS, certificate not checked (unless sslrootcert is set); verify-ca = TLS, certificate chain checked; ' +
            'verify-full = chain and host name checked',
        },
      ),
    ),
    sslrootcert: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'PEM file of the CA certificates to verify the server with (default: the system CA store); relative to the inventory file',
      }),
    ),
    password: Type.Optional(SecretSource),
    replication_user: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'role for physical replication connections (pg.basebackup, a copy streaming from this server): REPLICATION or superuser, with a pg_hba.conf `replication` line (default: user)',
      }),
    ),
    replication_password: Type.Optional(SecretSource),
  },
  { additionalProperties: false },
);

/** Patroni's REST API on a host (a cluster member). */
export const PatroniSchema = Type.Object(
  {
    // Checked in inventory.ts rather than by a pattern: a schema error would echo the URL, and
    // credentials written into it must be refused without printing them.
    url: Type.String({
      minLength: 1,
      description:
        'REST API base URL, e.g. http://10.0.0.11:8008 (no credentials: use username and password)',
    }),
    username: Type.Optional(Type.String({ minLength: 1, description: 'restapi.authentication username' })),
    password: Type.Optional(SecretSource),
    ca_file: Type.Optional(Type.String({ minLength: 1, description: 'CA to verify an https REST API' })),
    cert_file: Type.Optional(
      Type.String({ minLength: 1, description: 'client certificate (restapi.verify_client)' }),
    ),
    key_file: Type.Optional(Type.String({ minLength: 1 })),
    timeout: Type.Optional(Type.Number({ minimum: 0.1, description: 'seconds per request (default 5)' })),
    member: Type.Optional(
      Type.String({
        minLength: 1,
        description: "the member's Patroni `name` (default: the inventory host name)",
      }),
    ),
    config: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'patroni.yml on the host, for what the REST API cannot do (patronictl remove), e.g. /etc/patroni/patroni.yml',
      }),
    ),
    patronictl: Type.Optional(
      Type.String({ minLength: 1, description: 'patronictl command on the host (default patronictl)' }),
    ),
    dcs: Type.Optional(
      Type.Object(
        {
          etcd3: Type.Optional(
            Type.String({
              minLength: 1,
              description:
                "the cluster's etcd (v3) client URL, e.g. http://10.0.0.21:2379: a run holds its lock there (a lease-bound key); give this or consul. Checked by the loader (http(s), host, optional port; never quoted in a message)",
            }),
          ),
          consul: Type.Optional(
            Type.String({
              minLength: 1,
              description:
                "the cluster's Consul HTTP API, e.g. http://127.0.0.1:8500 (the local agent): a run holds its lock there (a key acquired by a session); give this or etcd3. Checked by the loader like etcd3",
            }),
          ),
          // consul only: an ACL token for the lock's requests (X-Consul-Token).
          token: Type.Optional(SecretSource),
          scope: Type.String({ minLength: 1, description: "the cluster's Patroni scope (the lock's name)" }),
          lock_ttl: Type.Optional(
            Type.Integer({
              minimum: 2,
              maximum: 300,
              description:
                "seconds a lock outlives a runner that died (default 15 with etcd3, 20 with consul: a Consul session's TTL is half of it and at least Consul's session_ttl_min, 10 s by default)",
            }),
          ),
        },
        {
          additionalProperties: false,
          description: "the cluster's DCS: one run at a time on the cluster, whichever machine it runs from",
        },
      ),
    ),
  },
  { additionalProperties: false },
);

/** PgBouncer's admin console on a host (a pooler in front of the cluster). */
export const PgBouncerSchema = Type.Object(
  {
    host: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'address of its listener (default: the ssh host, else 127.0.0.1)',
      }),
    ),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'default 6432' })),
    user: Type.Optional(
      Type.String({ minLength: 1, description: 'a user in its admin_users (default pgbouncer)' }),
    ),
    password: Type.Optional(SecretSource),
    sslmode: Type.Optional(
      Type.Union(
        ['disable', 'prefer', 'require', 'verify-ca', 'verify-full'].map((m) => Type.Literal(m)),
        { description: "as pg.sslmode (default prefer); PgBouncer's client_tls_* settings decide" },
      ),
    ),
    sslrootcert: Type.Optional(Type.String({ minLength: 1 })),
    pidfile: Type.Optional(
      Type.String({
        pattern: '^/[A-Za-z0-9._/-]+$',
        description:
          "its pidfile on the host (default: the one its SHOW CONFIG names): a pause's guard resumes it with SIGUSR2",
      }),
    ),
  },
  { additionalProperties: false },
);

/** A persistent disk of a host, zonal or regional. */
export const GcpDiskSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, description: 'the disk resource name' }),
    zone: Type.Optional(
      Type.String({ minLength: 1, description: "zonal disk: its zone (default the host's zone)" }),
    ),
    region: Type.Optional(Type.String({ minLength: 1, description: 'regional disk: its region' })),
    device_name: Type.Optional(
      Type.String({ minLength: 1, description: 'the device name it is attached under' }),
    ),
    pgdata: Type.Optional(Type.Boolean({ description: 'this disk holds PGDATA' })),
  },
  { additionalProperties: false },
);

/** Google Compute Engine settings of a host (the instance PostgreSQL runs on). */
export const GcpSchema = Type.Object(
  {
    project: Type.Optional(Type.String({ minLength: 1 })),
    zone: Type.Optional(Type.String({ minLength: 1, description: "the instance's zone" })),
    instance: Type.Optional(
      Type.String({ minLength: 1, description: 'the instance name (default: the inventory host name)' }),
    ),
    disks: Type.Optional(
      Type.Array(GcpDiskSchema, {
        description:
          'disks to snapshot; without it they are discovered from the instance (every non-boot disk)',
      }),
    ),
    credentials: Type.Optional(
      Type.Union(
        [
          Type.Object({ adc: Type.Literal(true) }, { additionalProperties: false }),
          Type.Object(
            { key_file: Type.String({ minLength: 1, description: 'a service-account JSON key file' }) },
            { additionalProperties: false },
          ),
          Type.Object(
            {
              impersonate: Type.String({
                minLength: 1,
                description: 'service account e-mail to impersonate',
              }),
              key_file: Type.Optional(
                Type.String({ minLength: 1, description: 'source credentials (default ADC)' }),
              ),
            },
            { additionalProperties: false },
          ),
        ],
        {
          description:
            'Application Default Credentials ({adc: true}, the default), a key file ({key_file: PATH}) or impersonation ({impersonate: SA_EMAIL}); none are needed against an emulator endpoint',
        },
      ),
    ),
    endpoint: Type.Optional(
      Type.Object(
        {
          host: Type.String({ minLength: 1 }),
          port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
          protocol: Type.Optional(Type.Union([Type.Literal('http'), Type.Literal('https')])),
        },
        {
          additionalProperties: false,
          description: 'another Compute API endpoint, e.g. the emulator of `pgrunbook lab`',
        },
      ),
    ),
    timeout: Type.Optional(Type.Number({ minimum: 1, description: 'seconds per API request (default 60)' })),
  },
  { additionalProperties: false },
);

/** One host. */
export const HostSchema = Type.Object(
  {
    transport: Type.Optional(
      Type.Union([Type.Literal('local'), Type.Literal('ssh')], {
        description: 'local or ssh; required unless ssh settings (here or in defaults) imply ssh',
      }),
    ),
    ssh: Type.Optional(SshSchema),
    become: Type.Optional(Type.Literal('sudo')),
    pg: Type.Optional(PgSchema),
    patroni: Type.Optional(PatroniSchema),
    pgbouncer: Type.Optional(PgBouncerSchema),
    gcp: Type.Optional(GcpSchema),
    vars: Type.Optional(Vars),
  },
  { additionalProperties: false },
);

/** A named group of hosts. */
export const GroupSchema = Type.Object(
  {
    hosts: Type.Optional(Type.Array(Type.String())),
    children: Type.Optional(Type.Array(Type.String())),
    vars: Type.Optional(Vars),
  },
  { additionalProperties: false },
);

/** The whole inventory file. */
export const InventorySchema = Type.Object(
  {
    vars: Type.Optional(Vars),
    defaults: Type.Optional(
      Type.Object(
        {
          transport: Type.Optional(Type.Union([Type.Literal('local'), Type.Literal('ssh')])),
          ssh: Type.Optional(SshSchema),
          pg: Type.Optional(PgSchema),
          gcp: Type.Optional(GcpSchema),
          become: Type.Optional(Type.Literal('sudo')),
        },
        { additionalProperties: false },
      ),
    ),
    hosts: Type.Record(Type.String({ pattern: '^[A-Za-z0-9_.-]+$' }), HostSchema),
    groups: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z0-9_.-]+$' }), GroupSchema)),
  },
  {
    additionalProperties: false,
    $id: 'https://pgrunbook.dev/schemas/inventory.schema.json',
    title: 'pgrunbook inventory',
  },
);

export type InventoryFile = Static<typeof InventorySchema>;
export type HostFile = Static<typeof HostSchema>;
export type SecretSourceFile = Static<typeof SecretSource>;
