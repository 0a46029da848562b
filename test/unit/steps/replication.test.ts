// Physical replication connections' text: the connection string (plain values as they are, others
// quoted), the passfile line (libpq's escapes; a line break refused), who logs in, and the backup
// history file name PostgreSQL archives for a backup.
import { describe, expect, it } from 'vitest';
import type { InventoryHost } from '../../../src/inventory/inventory.js';
import basebackup, { historyFileName } from '../../../src/steps/pg/basebackup.js';
import {
  kv,
  passfileText,
  replicationConninfo,
  replicationLogin,
} from '../../../src/steps/pg/replication.js';
import { Secret } from '../../../src/util/secret.js';
import { ctxOf } from '../helpers/plan-context.js';

const host = (pg: Record<string, unknown>) =>
  ({
    name: 'blue',
    transport: 'ssh',
    pg: { host: '10.0.0.1', port: 5432, user: 'app_admin', database: 'app', sslmode: 'require', ...pg },
    vars: {},
    groups: [],
  }) as unknown as InventoryHost;

describe('replication connections', () => {
  it('kv: a plain value as it is, anything else quoted with \\ and quote escaped', () => {
    expect(kv('host', '10.0.0.1')).toBe('host=10.0.0.1');
    expect(kv('sslrootcert', '/etc/ssl/ca.pem')).toBe('sslrootcert=/etc/ssl/ca.pem');
    expect(kv('port', 5432)).toBe('port=5432');
    expect(kv('application_name', 'a b')).toBe("application_name='a b'");
    expect(kv('x', "it's \\")).toBe("x='it\\'s \\\\'");
    expect(kv('x', '')).toBe("x=''");
  });

  it('logs in as pg.replication_user with its password, else as pg.user with pg.password', () => {
    const own = host({
      password: new Secret('pw-a', 'env A'),
      replicationUser: 'rep',
      replicationPassword: new Secret('pw-r', 'env R'),
    });
    expect(replicationLogin(own)).toMatchObject({ user: 'rep', hasPassword: true });
    expect(replicationLogin(own).password?.reveal()).toBe('pw-r');
    const plain = host({ password: new Secret('pw-a', 'env A') });
    expect(replicationLogin(plain).user).toBe('app_admin');
    expect(replicationLogin(plain).password?.reveal()).toBe('pw-a');
    // Not read yet (an offline plan): still known to have one.
    expect(replicationLogin(host({ passwordSource: { env: 'A' } })).hasPassword).toBe(true);
    expect(replicationLogin(host({})).hasPassword).toBe(false);
  });

  it('the connection string holds no password, and the address overrides', () => {
    const h = host({ password: new Secret('pw-secret-1', 'env A'), replicationUser: 'rep' });
    const text = replicationConninfo(h, { host: '192.168.1.5', port: 6543 });
    expect(text).toBe('host=192.168.1.5 port=6543 user=rep sslmode=require application_name=pgrunbook');
    expect(text).not.toContain('pw-secret-1');
  });

  it('passfile: any host, port and database; : and \\ escaped; a line break refused', () => {
    const login = (pw?: string) => ({
      user: 'rep:1',
      password: pw === undefined ? undefined : new Secret(pw, 'x'),
      hasPassword: pw !== undefined,
    });
    expect(passfileText(login('a:b\\c'))).toBe('*:*:*:rep\\:1:a\\:b\\\\c\n');
    expect(passfileText(login())).toBe('');
    expect(() => passfileText(login('two\nlines'))).toThrow(/line break/);
  });

  it('the backup history file name: timeline, segment, offset', () => {
    const mb16 = 16 * 1024 * 1024;
    expect(historyFileName(1, '0/2000028', mb16)).toBe('000000010000000000000002.00000028.backup');
    expect(historyFileName(3, '1/A3000060', mb16)).toBe('0000000300000001000000A3.00000060.backup');
    // 64 MB segments: 64 per 4 GB "log id".
    expect(historyFileName(2, '2/8000100', 64 * 1024 * 1024)).toBe(
      '000000020000000200000002.00000100.backup',
    );
  });

  it('pg.basebackup names its own parameter when the source host is unknown', () => {
    const params = { from: 'nosuch', to: '/srv/copy', bin_dir: '/usr/lib/postgresql/13/bin' };
    expect(() => basebackup.plan(ctxOf(host({})), params)).toThrow('from: no host "nosuch" in the inventory');
  });
});
