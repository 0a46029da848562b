// `patroni.remove_cluster`: wipe a cluster's state in the DCS (`patronictl remove`), as needed
// after pg_upgrade gave the data a new system identifier. Patroni's REST API has no such call, so
// this runs patronictl over the host's transport, answering its three questions on stdin. Always
// behind an approval gate; refuses while members still run unless told otherwise.
import { setTimeout as sleep } from 'node:timers/promises';
import { Type } from '@sinclair/typebox';
import { commandLine } from '../../connections/transport.js';
import { StepFailure } from '../../errors.js';
import type { InventoryHost } from '../../inventory/inventory.js';
import { done, notYet, poll } from '../../util/poll.js';
import { type ApplyContext, defineStep } from '../define.js';
import { memberClient } from './members.js';

const Params = Type.Object(
  {
    scope: Type.String({
      minLength: 1,
      description: "the cluster's name (Patroni `scope`), written out as patronictl itself asks for it",
    }),
    recheck_seconds: Type.Optional(
      Type.Number({
        minimum: 0,
        description:
          "seconds to wait before checking nothing re-registered (default 10, above Patroni's loop_wait); skipped when every member is in stopped_hosts and its REST API refuses connections",
      }),
    ),
    stopped_hosts: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        description:
          'inventory hosts whose Patroni was stopped on purpose: a member of theirs the DCS still lists as running (a key outliving a stop while paused) counts as stopped when its REST API refuses connections',
      }),
    ),
    wait_seconds: Type.Optional(
      Type.Number({
        minimum: 0,
        description:
          "how long to wait for members still listed as running to drop out (default 0). A Patroni stopped while paused leaves its member key as it was until the key's ttl runs out",
      }),
    ),
    check: Type.Optional(
      Type.Boolean({
        description:
          'only list the DCS and refuse as the wipe would (members still running), changing nothing; its outputs, passed as `listed` to the wipe, spare the wipe a listing of its own',
      }),
    ),
    listed: Type.Optional(
      Type.Object(
        {
          members_before: Type.Array(Type.String()),
          leader: Type.Optional(Type.String()),
          removed: Type.Optional(Type.Boolean()),
        },
        {
          description:
            "the outputs of a `check: true` run made once every Patroni was stopped: when every member it listed is in stopped_hosts and its REST API still refuses connections, the wipe runs at once with that leader's name (an upgrade's window saves a patronictl run); the DCS's members as patronictl remove prints them are compared afterwards",
        },
      ),
    ),
    allow_running: Type.Optional(
      Type.Boolean({
        description:
          'wipe even while members are registered as running (default false: stop Patroni on every member first)',
      }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  removed: Type.Boolean(),
  members_before: Type.Array(Type.String(), { description: 'members the DCS listed before the wipe' }),
  leader: Type.Optional(Type.String({ description: 'the leader the DCS named, if any' })),
});

/** patronictl's exact confirmation sentence (patroni/ctl.py `remove`). */
const AWARE = 'Yes I am aware';

interface ListedMember {
  Member?: string;
  Role?: string;
  State?: string;
}

function ctl(host: InventoryHost, args: string[]): string {
  const p = host.patroni;
  if (!p?.config)
    throw new StepFailure(
      `host ${host.name}: patroni.config (the patroni.yml patronictl reads) is needed for patronictl in the inventory`,
    );
  return commandLine({ argv: [p.patronictl, '-c', p.config, ...args] }, host.become);
}

const answers = (scope: string, leader?: string) => `${scope}\n${AWARE}\n${leader ? `${leader}\n` : ''}`;

export default defineStep({
  type: 'patroni.remove_cluster',
  summary:
    "Wipe a Patroni cluster's DCS state with patronictl remove (after pg_upgrade), behind an approval gate.",
  params: Params,
  outputs: Outputs,
  mutating: (p) => p.check !== true,
  marksChanges: true,
  undoSummary:
    'none: the DCS state is gone; Patroni writes it anew when the cluster bootstraps or starts again',
  confirm: (p) =>
    p.check === true
      ? undefined
      : `Wipe the DCS state of Patroni cluster ${String(p.scope)} (patronictl remove)?`,
  plan(ctx, p) {
    const listCmd = { kind: 'command' as const, line: ctl(ctx.host, ['list', p.scope, '-f', 'json']) };
    const refuses = p.allow_running
      ? { kind: 'note' as const, text: 'members still running are allowed (allow_running)' }
      : {
          kind: 'note' as const,
          text: `refuses if any member is still registered as running${p.wait_seconds ? ` after ${p.wait_seconds} s` : ''}${p.stopped_hosts?.length ? ` (members of ${p.stopped_hosts.join(', ')} count as stopped when their REST API refuses connections)` : ''}`,
        };
    if (p.check)
      return {
        action: `list the DCS members of cluster ${p.scope} and check that none still runs (changes nothing)`,
        ops: [listCmd, refuses],
      };
    const remove = {
      kind: 'command' as const,
      line: ctl(ctx.host, ['remove', p.scope, '-f', 'json']),
      stdin: answers(p.scope, p.allow_running || p.listed ? '<leader>' : undefined),
    };
    const action = `wipe the DCS state of cluster ${p.scope} with patronictl over ${ctx.host.transport} (the REST API has no such call)`;
    if (p.listed && !p.allow_running)
      return {
        action,
        ops: [
          {
            kind: 'note',
            text: `when every member the earlier listing named is one of ${(p.stopped_hosts ?? []).join(', ') || 'stopped_hosts'} and its REST API refuses connections: no listing of its own, the wipe names the leader listed then; otherwise as without \`listed\`:`,
          },
          listCmd,
          refuses,
          remove,
          { kind: 'note', text: "patronictl remove's own listing is compared with the earlier one" },
        ],
        undo: { action: 'none: the DCS state cannot be put back', ops: [] },
      };
    return {
      action,
      ops: [listCmd, refuses, remove, listCmd],
      undo: { action: 'none: the DCS state cannot be put back', ops: [] },
    };
  },
  async apply(ctx, p) {
    const t = await ctx.transport();
    const list = async (): Promise<ListedMember[]> => {
      const r = await t.exec(ctl(ctx.host, ['list', p.scope, '-f', 'json']), { signal: ctx.signal });
      if (r.exitCode !== 0)
        throw new StepFailure(
          `patronictl list failed (exit ${r.exitCode}): ${(r.stderr || r.stdout).trim().slice(-800)}`,
        );
      const text = r.stdout.trim();
      try {
        return text ? (JSON.parse(text) as ListedMember[]) : [];
      } catch {
        throw new StepFailure(
          `patronictl list -f json printed something else than JSON: ${text.slice(0, 300)}`,
        );
      }
    };
    // A member key outlives a clean Patroni stop (state "stopped") until its TTL; any other state
    // (running, restarting, stopping, creating replica…) is a Patroni that may claim the cluster
    // again after the wipe — or one stopped while paused, whose key keeps its last state until the
    // ttl expires: wait_seconds waits that out.
    const down = await refusing(ctx, p.stopped_hosts ?? []);
    if (down.size) ctx.log(`Patroni REST API refuses connections (stopped): ${[...down].join(', ')}`);
    // Listed before (an upgrade lists once Patroni is stopped, before its window): every member
    // named then is known stopped now, so a listing of its own would only lengthen the window.
    const earlier = p.check || p.allow_running ? undefined : p.listed?.members_before;
    if (earlier?.every((m) => down.has(m))) {
      ctx.log(
        `every member listed before (${earlier.join(', ') || 'none'}) is stopped: wiping without listing again${p.listed?.leader ? ` (leader ${p.listed.leader})` : ''}`,
      );
      try {
        return await wipe(earlier, p.listed?.leader);
      } catch (err) {
        // patronictl refused before deleting anything: the DCS names another leader than the
        // listing did (or one where it named none: the answers ran out, "Aborted!"). Only a
        // Patroni that ran meanwhile can have changed it: list and check again.
        if (!(err instanceof StepFailure) || !/current leader|Aborted/.test(err.message)) throw err;
        ctx.log(`patronictl remove refused, the DCS changed since it was listed: listing it again`);
      }
    } else if (earlier) ctx.log('not every member listed before is known stopped now: listing the DCS again');
    const notStopped = (ms: ListedMember[]) =>
      ms.filter((m) => (m.State ?? '') !== 'stopped' && !down.has(String(m.Member)));
    const stillRun = (ms: ListedMember[]) =>
      new StepFailure(
        `members of ${p.scope} still run: ${notStopped(ms)
          .map((m) => `${m.Member} (${m.Role}, ${m.State})`)
          .join(', ')}. Stop Patroni on every member first, or set allow_running: true`,
      );
    let before = await list();
    if (notStopped(before).length && p.wait_seconds && !p.allow_running) {
      ctx.log(
        `waiting up to ${p.wait_seconds} s for ${notStopped(before)
          .map((m) => m.Member)
          .join(', ')} to drop out of the DCS`,
      );
      const first = before;
      before = await poll(
        async (attempt) => {
          // The listing just made is the first attempt.
          const ms = attempt === 1 ? first : await list();
          return notStopped(ms).length ? notYet(ms) : done(ms);
        },
        {
          timeoutMs: p.wait_seconds * 1000,
          intervalMs: 1000,
          signal: ctx.signal,
          onTimeout: (last) => stillRun(last ?? first),
        },
      );
    }
    if (notStopped(before).length && !p.allow_running) throw stillRun(before);
    const leader = leaderOf(before);
    ctx.log(
      `DCS lists ${before.length ? before.map((m) => `${m.Member} (${m.Role}, ${m.State})`).join(', ') : 'no member'}`,
    );
    if (p.check) return { removed: false, members_before: before.map((m) => String(m.Member)), leader };
    return wipe(
      before.map((m) => String(m.Member)),
      leader,
    );

    async function wipe(listed: string[], leader: string | undefined) {
      ctx.changing();
      const r = await t.exec(ctl(ctx.host, ['remove', p.scope, '-f', 'json']), {
        signal: ctx.signal,
        stdin: answers(p.scope, leader),
        onOutput: (s, c) => ctx.output(s, c),
      });
      if (r.exitCode !== 0)
        throw new StepFailure(
          `patronictl remove failed (exit ${r.exitCode}): ${(r.stderr || r.stdout).trim().slice(-800)}`,
        );
      // What the DCS held when patronictl removed it, as it printed that before its questions.
      const atWipe = removeListing(r.stdout);
      const members = [...new Set([...listed, ...(atWipe ?? []).map((m) => String(m.Member))])];
      const unknown = (atWipe ?? []).filter((m) => !listed.includes(String(m.Member)));
      if (unknown.length)
        ctx.log(
          `the DCS listed ${unknown.map((m) => `${m.Member} (${m.Role}, ${m.State})`).join(', ')} at the wipe, not listed before`,
        );
      // A Patroni still alive re-registers within its loop_wait: look again after that. Unless every
      // member the DCS listed is known stopped (its REST API refused connections before the wipe and
      // still does after it): then nobody is left to re-register, and the wait would only lengthen
      // the upgrade's downtime by a loop_wait.
      if (members.length && members.every((m) => down.has(m))) {
        const still = await refusing(ctx, p.stopped_hosts ?? []);
        if (members.every((m) => still.has(m))) {
          ctx.log(
            `the DCS state of ${p.scope} is wiped (every member it listed is stopped: no recheck needed)`,
          );
          return { removed: true, members_before: members, leader };
        }
      }
      await sleep((p.recheck_seconds ?? 10) * 1000, undefined, { signal: ctx.signal });
      const after = (await list()).filter((m) => (m.State ?? '') !== 'stopped');
      if (after.length)
        throw new StepFailure(
          `patronictl remove exited 0 but the DCS still lists ${after.map((m) => m.Member).join(', ')} (a member re-registered: is Patroni still running?)`,
        );
      ctx.log(`the DCS state of ${p.scope} is wiped`);
      return { removed: true, members_before: members, leader };
    }
  },
});

const leaderOf = (ms: ListedMember[]) => ms.find((m) => /leader/i.test(m.Role ?? ''))?.Member;

/** The member listing `patronictl remove -f json` prints before its questions, if it printed one. */
export function removeListing(stdout: string): ListedMember[] | undefined {
  const line = stdout.split('\n').find((l) => l.startsWith('['));
  if (!line) return undefined;
  try {
    const v = JSON.parse(line) as unknown;
    return Array.isArray(v) ? (v as ListedMember[]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Member names of the hosts whose Patroni REST API refuses connections: stopped, not hung (a
 * timeout or any answer proves nothing of the kind).
 */
async function refusing(ctx: ApplyContext, hosts: string[]): Promise<Set<string>> {
  const out = new Set<string>();
  await Promise.all(
    hosts.map(async (name) => {
      const h = ctx.peer(name);
      if (!h?.patroni) throw new StepFailure(`stopped_hosts: "${name}" is not a host with patroni settings`);
      try {
        await memberClient(ctx, name, h.patroni.url).memberStatus(ctx.signal);
      } catch (err) {
        if (/ECONNREFUSED/.test((err as Error).message)) out.add(h.patroni.member ?? h.name);
      }
    }),
  );
  return out;
}
