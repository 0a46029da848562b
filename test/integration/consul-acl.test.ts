// The run lock on a Consul that enforces ACLs (default policy deny): Patroni on it with its own
// token; pgrunbook without a token is refused saying a token is needed, with a token from
// {env: NAME} whose policy allows only its lock it runs and releases the lock, with a token that
// may not write the lock's key it is refused naming the token by its source, never its value.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ConsulServer,
  httpRequest,
  type PatroniCluster,
  startConsul,
  startPatroniCluster,
} from '../../tools/testenv/index.js';
import { runCli, workdir } from './cli.js';

const MASTER = 'pgrb-master-7e21c0d4-2b51-4f3c-9a43-0a1b2c3d4e5f';
let consul: ConsulServer;
let cluster: PatroniCluster;

beforeAll(async () => {
  consul = await startConsul({ aclMasterToken: MASTER });
  cluster = await startPatroniCluster({ consul, members: 2 });
}, 90_000);
afterAll(async () => {
  await cluster?.stop();
  await consul?.stop();
});

/** A token with one policy of these rules (Consul 1.8 ACL API, as the master token). */
async function tokenWith(name: string, rules: string): Promise<string> {
  const p = await httpRequest('PUT', `${consul.httpUrl}/v1/acl/policy?token=${MASTER}`, {
    Name: name,
    Rules: rules,
  });
  expect(p.status, p.body).toBe(200);
  const t = await httpRequest('PUT', `${consul.httpUrl}/v1/acl/token?token=${MASTER}`, {
    Policies: [{ Name: name }],
  });
  expect(t.status, t.body).toBe(200);
  return (JSON.parse(t.body) as { SecretID: string }).SecretID;
}

const inventory = (token?: string) =>
  `hosts:\n${cluster.members
    .map(
      (m) =>
        `  ${m.name}: { transport: local, patroni: { url: "${m.restUrl}", member: ${m.name}, dcs: { consul: "${consul.httpUrl}", scope: ${cluster.scope}${token ? `, token: ${token}` : ''} } } }`,
    )
    .join('\n')}\n`;
const QUICK = `- name: touch
  hosts: patroni_leader
  steps:
    - shell: "touch ran"
`;

/** Everything a run left: its output and its journal. */
function allText(cwd: string, out: string): string {
  const runs = join(cwd, '.pgrunbook', 'runs');
  let text = out;
  try {
    for (const id of readdirSync(runs)) text += readFileSync(join(runs, id, 'journal.jsonl'), 'utf8');
  } catch {
    // no run directory: nothing ran
  }
  return text;
}

describe('the run lock on a Consul with ACLs enforced', () => {
  it('no token: refused saying Consul enforces ACLs, nothing run', async () => {
    // Patroni runs on it (with the master token): the cluster has a leader in Consul.
    expect(await cluster.leader()).toBeTruthy();
    const cwd = workdir({ 'inv.yml': inventory(), 'pb.yml': QUICK });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--yes'], { cwd });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`the run lock in its DCS (Consul ${consul.httpUrl}) could not be taken`);
    expect(r.stderr).toContain('HTTP 403');
    expect(r.stderr).toContain('Consul enforces ACLs: give patroni.dcs.token');
    expect(readdirSync(cwd)).not.toContain('ran');
  }, 30_000);

  it('a token from {env} allowed only the lock: the run holds it and releases it; the token is never printed', async () => {
    const token = await tokenWith(
      'pgrunbook-lock',
      'key_prefix "pgrunbook/locks/" { policy = "write" }\nsession_prefix "" { policy = "write" }',
    );
    const cwd = workdir({ 'inv.yml': inventory('{ env: PGRB_CONSUL_TOKEN }'), 'pb.yml': QUICK });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--yes'], {
      cwd,
      env: { PGRB_CONSUL_TOKEN: token },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`lock: Patroni cluster ${cluster.scope} in its DCS (Consul ${consul.httpUrl}`);
    expect(readdirSync(cwd)).toContain('ran');
    expect(allText(cwd, r.stdout + r.stderr)).not.toContain(token);
    const left = await httpRequest(
      'GET',
      `${consul.httpUrl}/v1/kv/pgrunbook/locks/${cluster.scope}?token=${MASTER}`,
    );
    expect(left.status).toBe(404);
    // The variable unset: a located problem at the token, before anything runs.
    const unset = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--yes'], {
      cwd: workdir({ 'inv.yml': inventory('{ env: PGRB_CONSUL_TOKEN }'), 'pb.yml': QUICK }),
    });
    expect(unset.code).toBe(2);
    expect(unset.stderr).toMatch(/patroni\.dcs\.token: environment variable PGRB_CONSUL_TOKEN is not set/);
  }, 60_000);

  it('a token that may not write the lock key: refused naming the token by its source, not its value', async () => {
    const token = await tokenWith(
      'pgrunbook-no-kv',
      'key_prefix "pgrunbook/locks/" { policy = "read" }\nsession_prefix "" { policy = "write" }',
    );
    const cwd = workdir({ 'inv.yml': inventory('{ env: PGRB_CONSUL_TOKEN }'), 'pb.yml': QUICK });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--yes'], {
      cwd,
      env: { PGRB_CONSUL_TOKEN: token },
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('HTTP 403');
    expect(r.stderr).toContain('the ACL token from env PGRB_CONSUL_TOKEN may not do this');
    expect(r.stderr).not.toContain(token);
    expect(readdirSync(cwd)).not.toContain('ran');
    // Its session was ended, not left to expire: none of the sessions Consul knows is pgrunbook's.
    const sessions = JSON.parse(
      (await httpRequest('GET', `${consul.httpUrl}/v1/session/list?token=${MASTER}`)).body,
    ) as { Name: string }[];
    expect(sessions.filter((s) => s.Name.startsWith('pgrunbook'))).toEqual([]);
  }, 30_000);
});
