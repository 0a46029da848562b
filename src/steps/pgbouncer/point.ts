// `pgbouncer.point`: point one of PgBouncer's databases at another server (a new leader) — its
// line in the [databases] section of pgbouncer.ini gets the new host and port (every other key,
// line and comment kept byte for byte, the file's owner and mode too), then RELOAD, and SHOW
// DATABASES must show the new address. The undo puts the line back as it was and reloads.
import { Type } from '@sinclair/typebox';
import { commandLine, type Transport } from '../../connections/transport.js';
import { StepFailure } from '../../errors.js';
import { quote } from '../../util/shell.js';
import { type ApplyContext, defineStep } from '../define.js';
import { consoleAddress, consoleCommand } from './admin.js';
import { DB_NAME, maskPasswords, pointDatabase } from './ini.js';

const Params = Type.Object(
  {
    database: Type.String({
      pattern: DB_NAME.source,
      description: 'the database name clients use (its [databases] key)',
    }),
    host: Type.String({
      pattern: '^[A-Za-z0-9._:/%-]+$',
      description: 'the server to point it at: host name, address or socket directory',
    }),
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
    dbname: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z0-9._-]+$',
        description: 'the database on that server (default: unchanged)',
      }),
    ),
    file: Type.Optional(
      Type.String({
        pattern: '^/[A-Za-z0-9._/-]+$',
        description: 'the file holding the [databases] line (default: the conffile SHOW CONFIG names)',
      }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  file: Type.String(),
  before: Type.String({ description: 'the line as it was (password= values shown as ***)' }),
  after: Type.String({ description: 'the line as written (password= values shown as ***)' }),
  previous: Type.Record(Type.String(), Type.Union([Type.String(), Type.Null()]), {
    description: 'the keys set and their values before (null: absent): what the undo sets back',
  }),
  changed: Type.Boolean({ description: 'false when the line already pointed there' }),
});

export default defineStep({
  type: 'pgbouncer.point',
  summary:
    'Point a PgBouncer database at another server: its pgbouncer.ini line gets the new host and port, then RELOAD (checked with SHOW DATABASES).',
  params: Params,
  outputs: Outputs,
  mutating: true,
  marksChanges: true,
  undoSummary: 'puts the line back as it was and reloads',
  plan(ctx, p) {
    const file = p.file ?? '(the conffile SHOW CONFIG names)';
    return {
      action: `point database ${p.database} of PgBouncer ${consoleAddress(ctx.host)} at ${p.host}:${p.port}`,
      ops: [
        ...(p.file ? [] : [{ kind: 'sql' as const, sql: 'SHOW CONFIG' }]),
        { kind: 'command', line: readLine(file, ctx.host.become) },
        {
          kind: 'note',
          text: `in [databases], the line of ${p.database}: host=${p.host} port=${p.port}${p.dbname ? ` dbname=${p.dbname}` : ''} (other keys kept); written back with the file's owner and mode`,
        },
        { kind: 'sql', sql: 'RELOAD' },
        { kind: 'sql', sql: 'SHOW DATABASES' },
      ],
      undo: {
        action: 'put the line back and reload',
        ops: [
          { kind: 'note', text: `the line of ${p.database} in ${file} as it was` },
          { kind: 'sql', sql: 'RELOAD' },
        ],
      },
    };
  },
  async apply(ctx, p) {
    const file = p.file ?? (await conffile(ctx));
    const t = await ctx.transport();
    const text = await readFile(ctx, t, file);
    let res: ReturnType<typeof pointDatabase>;
    try {
      res = pointDatabase(text, p.database, { host: p.host, port: p.port, dbname: p.dbname });
    } catch (err) {
      throw new StepFailure(`${file}: ${(err as Error).message}`);
    }
    if (res.before === res.after) {
      ctx.log(`${file}: ${p.database} already points at ${p.host}:${p.port}`);
      return {
        file,
        before: maskPasswords(res.before),
        after: maskPasswords(res.after),
        previous: res.previous,
        changed: false,
      };
    }
    ctx.changing();
    await writeKeepingOwner(ctx, t, file, res.text);
    await reloadAndCheck(ctx, p.database, p.host, p.port);
    // The line may hold a backend password: it never reaches the log, the outputs or the journal.
    const [before, after] = [maskPasswords(res.before), maskPasswords(res.after)];
    ctx.log(`${file}: ${before.trim()}  →  ${after.trim()}`);
    return { file, before, after, previous: res.previous, changed: true };
  },
  async undo(ctx, p, out) {
    if (!out.changed) return;
    const t = await ctx.transport();
    const text = await readFile(ctx, t, out.file);
    // The keys this run set go back to their values before (an absent one is removed again),
    // only while the line is still as this run wrote it.
    let back: ReturnType<typeof pointDatabase> | undefined;
    try {
      back = pointDatabase(text, p.database, { keys: out.previous });
    } catch {
      back = undefined;
    }
    if (!back || maskPasswords(back.before) !== out.after)
      throw new StepFailure(
        `${out.file}: the line this run wrote for ${p.database} is no longer there as written (someone changed the file): put back by hand: ${out.before.trim()}`,
      );
    await writeKeepingOwner(ctx, t, out.file, back.text);
    await consoleCommand(ctx.host, 'RELOAD', ctx.signal);
    ctx.log(`${out.file}: ${p.database} points back: ${out.before.trim()}`);
  },
});

const readLine = (file: string, become?: 'sudo') => commandLine({ argv: ['cat', '--', file] }, become);

async function conffile(ctx: ApplyContext): Promise<string> {
  const rows = await consoleCommand(ctx.host, 'SHOW CONFIG', ctx.signal);
  const f = String(rows.find((r) => r.key === 'conffile')?.value ?? '');
  if (!f.startsWith('/'))
    throw new StepFailure(
      `PgBouncer ${consoleAddress(ctx.host)} names no config file (SHOW CONFIG conffile): set file:`,
    );
  return f;
}

async function readFile(ctx: ApplyContext, t: Transport, file: string): Promise<string> {
  const r = await t.exec(readLine(file, ctx.host.become), { signal: ctx.signal });
  if (r.exitCode !== 0) throw new StepFailure(`cannot read ${file} (exit ${r.exitCode}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** Writes through a temporary file renamed over the original, with the original's owner and mode. */
async function writeKeepingOwner(ctx: ApplyContext, t: Transport, file: string, text: string): Promise<void> {
  const f = quote(file);
  const tmp = quote(`${file}.pgrunbook-tmp`);
  const script = `set -e\n(umask 077 && cat > ${tmp})\nchmod --reference=${f} ${tmp}\nchown --reference=${f} ${tmp} 2>/dev/null || true\nmv -f ${tmp} ${f}`;
  const r = await t.exec(commandLine({ script }, ctx.host.become), { stdin: text, signal: ctx.signal });
  if (r.exitCode !== 0)
    throw new StepFailure(`writing ${file} failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
}

async function reloadAndCheck(
  ctx: ApplyContext,
  database: string,
  host: string,
  port: number,
): Promise<void> {
  await consoleCommand(ctx.host, 'RELOAD', ctx.signal);
  const rows = await consoleCommand(ctx.host, 'SHOW DATABASES', ctx.signal);
  const row = rows.find((r) => r.name === database);
  if (!row || String(row.host) !== host || Number(row.port) !== port)
    throw new StepFailure(
      `after RELOAD, SHOW DATABASES says ${database} is ${row ? `${row.host}:${row.port}` : 'missing'}, not ${host}:${port}: PgBouncer did not take the change (is ${consoleAddress(ctx.host)} reading that file?)`,
    );
}
