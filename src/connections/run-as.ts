// Commands that must run as the database server's OS user (pg_ctl, initdb, pg_upgrade, vacuumdb):
// PostgreSQL refuses to run as root, and the data directory belongs to that user.
import { userInfo } from 'node:os';
import { quote } from '../util/shell.js';
import { commandLine } from './transport.js';

/** What deciding the user of a command needs to know of a host (an inventory host has it all). */
export interface RunAsHost {
  transport: 'local' | 'ssh';
  ssh?: { user?: string };
  become?: 'sudo';
  vars: Record<string, unknown>;
}

/** The server's OS user: the given name, else the host var pg_os_user, else postgres. */
export function serverUser(host: RunAsHost, given?: string): string {
  if (given) return given;
  const v = host.vars.pg_os_user;
  return typeof v === 'string' && v ? v : 'postgres';
}

/**
 * The exact line that runs `script` as `user` on the host. Decided from the inventory alone, so a
 * plan shows what will be sent: with `become: sudo`, sudo switches straight to the user; an ssh
 * login (or local process) that already is the user runs it as is; local root uses runuser.
 */
export function asUser(host: RunAsHost, user: string, script: string): string {
  const wrapped = (tool: string) => `${tool} -u ${quote(user)} -- sh -c ${quote(script)}`;
  if (host.become === 'sudo') return wrapped('sudo -n');
  const me = host.transport === 'ssh' ? host.ssh?.user : localUser();
  if (me === user) return script;
  if (host.transport === 'local' && process.getuid?.() === 0) return wrapped('runuser');
  return wrapped('sudo -n');
}

/** A line for the host's own login user, through become when the host has it. */
export function asLogin(host: RunAsHost, script: string): string {
  return commandLine({ script }, host.become);
}

function localUser(): string | undefined {
  try {
    return userInfo().username;
  } catch {
    return undefined;
  }
}
