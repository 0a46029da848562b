// Issue 11, secrets: a canary in every secret source the inventory has — a PostgreSQL password
// (real PostgreSQL, 2 characters), Patroni credentials (a loopback REST API that checks them and,
// when refusing, echoes them back like a careless proxy would; it contains `|`), an SSH key
// passphrase (real sshd; equal to the playbook's directory name) and a GCP service-account key
// file — then every artifact of plan, run, a failing run, the report and resume is searched.
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  freePort,
  type PgServer,
  type SshServer,
  startPostgres,
  startSshd,
} from '../../tools/testenv/index.js';
import { CLI, events, runCli, runIds, workdir } from './cli.js';

const CANARY = {
  /** PostgreSQL password, from {file}: two characters. */
  pg: 'Zq',
  /** Patroni REST password, from {env}: contains a Markdown table's `|`. */
  patroni: 'pa|tr-cn-9147',
  /** SSH key passphrase, from {env}: also the name of the directory the playbook is in. */
  ssh: 'rbkseg4471',
  /** A GCP key file's private key body and key id. */
  gcpKey: 'MIIEgcpkeycn5512canary',
  gcpKeyId: 'gcpkid-cn-0771',
};

let pg: PgServer;
let sshd: SshServer;
let patroni: Server;
let patroniPort: number;
/** The REST API fails PATCH /config (echoing the credentials) until this is set. */
let accept = false;
let paused = false;
/** The fake's dynamic configuration (the pause and the run's marker live here). */
const config: Record<string, unknown> = {};
const authSeen: string[] = [];

beforeAll(async () => {
  [pg, sshd] = await Promise.all([startPostgres({ version: 15, password: CANARY.pg }), startSshd()]);
  patroniPort = await freePort();
  patroni = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      const json = (status: number, v: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(v));
      };
      const auth = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString();
      if (req.method === 'GET' && req.url === '/cluster')
        return json(200, {
          scope: 'cn',
          pause: paused,
          members: [
            {
              name: 'db',
              role: 'leader',
              state: 'running',
              api_url: `http://127.0.0.1:${patroniPort}/patroni`,
            },
          ],
        });
      if (req.method === 'GET' && req.url === '/patroni')
        return json(200, { state: 'running', role: 'primary', pause: paused, patroni: { scope: 'cn' } });
      if (req.method === 'PATCH' && req.url === '/config') {
        authSeen.push(auth);
        if (!accept || auth !== `admin:${CANARY.patroni}`) {
          res.writeHead(503, { 'content-type': 'text/plain' });
          return res.end(`refused credentials ${auth}`);
        }
        // Patroni's PATCH merges into the dynamic configuration; null removes a key.
        for (const [k, v] of Object.entries(JSON.parse(body) as Record<string, unknown>))
          if (v === null) delete config[k];
          else config[k] = v;
        paused = config.pause === true;
        return json(200, config);
      }
      if (req.method === 'GET' && req.url === '/config') return json(200, config);
      json(404, {});
    });
  });
  await new Promise<void>((r) => patroni.listen(patroniPort, '127.0.0.1', r));
});
afterAll(async () => {
  await new Promise((r) => patroni?.close(r));
  await Promise.all([pg?.stop(), sshd?.stop()]);
});

/** Every way a canary could show: whole, and the parts a formatter could split it into. */
function leaks(text: string): string[] {
  const found: string[] = [];
  for (const [name, value] of Object.entries(CANARY)) {
    // A 2-character secret is masked where it stands as a token (docs/security.md#secrets).
    const re =
      value.length < 6
        ? new RegExp(`(?<![A-Za-z0-9])${value}(?![A-Za-z0-9])`)
        : new RegExp(value.replace(/[|]/g, '\\\\?\\|'));
    if (re.test(text)) found.push(name);
    for (const part of value.split('|'))
      if (part !== value && part.length >= 6 && text.includes(part)) found.push(`${name} (part ${part})`);
  }
  return found;
}

describe('secret canaries', () => {
  it('appear 0 times in plans, runs, a failure, reports, journals and errors; resume still works', async () => {
    const cwd = workdir();
    const pbDir = join(cwd, CANARY.ssh);
    mkdirSync(pbDir);
    // An encrypted copy of the test key: its passphrase is the SSH canary.
    const key = join(cwd, 'id_enc');
    copyFileSync(sshd.identityFile, key);
    execFileSync('ssh-keygen', ['-q', '-p', '-f', key, '-P', '', '-N', CANARY.ssh]);
    writeFileSync(join(cwd, 'pg.pw'), `${CANARY.pg}\n`);
    writeFileSync(
      join(cwd, 'sa.json'),
      JSON.stringify({
        type: 'service_account',
        client_email: 'cn@example.iam.gserviceaccount.com',
        private_key_id: CANARY.gcpKeyId,
        private_key: `-----BEGIN PRIVATE KEY-----\n${CANARY.gcpKey}\n-----END PRIVATE KEY-----\n`,
      }),
    );
    // What a careless command prints: every canary, in the forms it takes in files.
    writeFileSync(
      join(cwd, 'leak.txt'),
      [
        `PGPASSWORD=${CANARY.pg}`,
        CANARY.pg,
        `patroni: ${CANARY.patroni}`,
        `passphrase "${CANARY.ssh}"`,
        readFileSync(join(cwd, 'sa.json'), 'utf8'),
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(cwd, 'inv.yml'),
      `
hosts:
  remote:
    ssh: { host: ${sshd.host}, port: ${sshd.port}, user: ${sshd.user}, identity_file: ${key}, identity_passphrase: { env: CN_SSH }, known_hosts: ${sshd.knownHostsFile} }
  db:
    transport: local
    pg: { host: 127.0.0.1, port: ${pg.port}, user: postgres, sslmode: disable, password: { file: pg.pw } }
    patroni: { url: "http://127.0.0.1:${patroniPort}", username: admin, password: { env: CN_PATRONI }, timeout: 2 }
    gcp: { project: cn-project, zone: europe-west1-b, credentials: { key_file: sa.json } }
`,
    );
    writeFileSync(
      join(pbDir, 'pb.yml'),
      `
- name: reach the ssh host
  hosts: remote
  steps:
    - id: who
      shell: id -un
- name: database
  hosts: db
  steps:
    - id: careless
      name: a command that prints secrets
      shell: cat ${join(cwd, 'leak.txt')}
    - id: me
      pg.query: "select current_user as u"
    - name: pause patroni
      patroni.pause: { timeout: 5 }
    # Paused for a while: a guard left by the failed attempt of this run (watching for its pause
    # to land) must leave the resumed attempt's pause to that attempt's own guard.
    - name: work under the pause
      shell: sleep 3
`,
    );
    const env = { CN_SSH: CANARY.ssh, CN_PATRONI: CANARY.patroni };
    const pb = join(CANARY.ssh, 'pb.yml');
    const artifacts: Record<string, string> = {};
    const keep = (name: string, r: { stdout: string; stderr: string }) => {
      artifacts[`${name} stdout`] = r.stdout;
      artifacts[`${name} stderr`] = r.stderr;
    };

    for (const format of ['text', 'json', 'markdown']) {
      const offline = await runCli(['plan', pb, '-i', 'inv.yml', '--format', format], { cwd, env });
      expect(offline.code, offline.stderr).toBe(0);
      keep(`plan ${format}`, offline);
      const checked = await runCli(['plan', pb, '-i', 'inv.yml', '--check', '--format', format], {
        cwd,
        env,
      });
      expect(checked.code, checked.stderr).toBe(0);
      keep(`plan --check ${format}`, checked);
    }
    expect(artifacts['plan --check text stdout']).toContain('PostgreSQL 15');

    // Two failing runs: the REST API refuses the credentials and echoes them in its answer.
    const plain = await runCli(['run', pb, '-i', 'inv.yml', '--yes'], { cwd, env });
    keep('run plain (failing)', plain);
    expect(plain.code).toBe(1);
    expect(plain.stdout).toContain('PATCH /config answered 503: refused credentials admin:***');
    const json = await runCli(
      ['run', pb, '-i', 'inv.yml', '--yes', '--output', 'json', '--report', 'failed.md'],
      { cwd, env },
    );
    keep('run json (failing)', json);
    expect(json.code).toBe(1);
    // The credentials did reach the server: the failure was theirs to refuse, not a missing secret.
    expect(authSeen).toContain(`admin:${CANARY.patroni}`);
    // The secrets were used: the ssh key opened with its passphrase, PostgreSQL took its password.
    const ev = events(json.stdout);
    const ok = (id: string) =>
      ev.some((e) => e.type === 'step_finished' && (e.names as string[])?.includes(id) && e.status === 'ok');
    expect(ok('who') && ok('me') && ok('careless')).toBe(true);
    const failedRun = String(ev.find((e) => e.type === 'run_started')?.runId);
    // The live tree, on a pseudo-terminal (script(1)), failing the same way.
    artifacts['run live tree (failing)'] = await new Promise<string>((res) => {
      const child = spawn(
        'script',
        ['-qfec', `exec ${process.execPath} ${CLI} run ${pb} -i inv.yml --yes`, '/dev/null'],
        { cwd, env: { ...process.env, ...env, SHELL: '/bin/sh' }, stdio: ['pipe', 'pipe', 'pipe'] },
      );
      let screen = '';
      child.stdout.on('data', (c) => {
        screen += c.toString();
      });
      child.on('close', () => res(screen));
    });
    expect(artifacts['run live tree (failing)']).toContain('refused credentials admin:***');

    // Resume reads the playbook path back from the journal: it must be the real path.
    accept = true;
    const resumed = await runCli(
      ['resume', failedRun, '--yes', '--output', 'json', '--report', 'resumed.md'],
      {
        cwd,
        env,
      },
    );
    keep('resume json', resumed);
    expect(resumed.code, resumed.stderr + resumed.stdout).toBe(0);
    expect(events(resumed.stdout).find((e) => e.type === 'run_finished')?.status).toBe('ok');
    // The playbook never resumes: the pause's guard (on the ssh host, holding the Patroni
    // credentials it got on its stdin) resumed it when the run ended, with those credentials.
    expect(paused).toBe(false);
    expect(JSON.stringify(events(resumed.stdout).find((e) => e.type === 'run_finished'))).toContain(
      'Patroni pause of cluster cn: resumed Patroni through',
    );
    expect(config.pgrunbook_pause).toBeUndefined();
    // The plain run, resumed in plain output.
    const plainRun = /run (\d{8}-\d{6}-[a-z0-9]+)/.exec(plain.stdout)![1]!;
    const resumedPlain = await runCli(['resume', plainRun, '--yes'], { cwd, env });
    keep('resume plain', resumedPlain);
    expect(resumedPlain.code, resumedPlain.stderr + resumedPlain.stdout).toBe(0);

    for (const f of ['failed.md', 'resumed.md']) artifacts[f] = readFileSync(join(cwd, f), 'utf8');
    expect(artifacts['failed.md']).toContain('refused credentials admin:***');
    for (const id of runIds(cwd)) {
      const dir = join(cwd, '.pgrunbook', 'runs', id);
      for (const f of readdirSync(dir)) artifacts[`run ${id} ${f}`] = readFileSync(join(dir, f), 'utf8');
      // The journal keeps the playbook's path as written: resume needs it.
      expect(artifacts[`run ${id} journal.jsonl`]).toContain(join(pbDir, 'pb.yml'));
    }

    // The SSH canary is also the name of the playbook's directory, a path the operator wrote:
    // paths are structure and stay as they are (masking a segment would show which one is the
    // secret, and break resume). Outside that path it must not appear.
    const found: string[] = [];
    for (const [name, text] of Object.entries(artifacts)) {
      const rest = text.split(pbDir).join('<playbook dir>').split(pb).join('<playbook>');
      for (const l of leaks(rest)) found.push(`${l} in ${name}`);
    }
    expect(found).toEqual([]);
    expect(Object.keys(artifacts).length).toBeGreaterThanOrEqual(20);
  }, 240_000);
});
