// `gcp.label_snapshots`: add labels to snapshots once more is known — the stop LSN exists only
// after pg.backup_stop, while the snapshots were taken before it. Undo puts the old labels back.
import { Type } from '@sinclair/typebox';
import { StepFailure } from '../../errors.js';
import { defineStep } from '../define.js';
import { computeOf, gcpOf, labelsOf, opWait, snapshotUrl } from './common.js';

const Params = Type.Object(
  {
    snapshots: Type.Record(Type.String(), Type.Unknown(), {
      description: 'the outputs of the gcp.snapshot step, e.g. "{{ snap }}"',
    }),
    labels: Type.Record(Type.String(), Type.Unknown(), {
      description: 'labels to add, e.g. { stop_lsn: "{{ stop.lsn }}" }; fitted to GCE label rules',
    }),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  labeled: Type.Array(Type.String()),
  previous: Type.Record(Type.String(), Type.Record(Type.String(), Type.String()), {
    description: 'each snapshot’s labels before, for the undo',
  }),
});

const namesOf = (snaps: Record<string, unknown>): string[] => {
  const list = (snaps.snapshots as { name?: unknown }[] | undefined) ?? [];
  const names = list.map((x) => x?.name).filter((n): n is string => typeof n === 'string');
  if (snaps.skipped === true) return [];
  if (!names.length) throw new StepFailure('snapshots: expected the outputs of a gcp.snapshot step');
  return names;
};

export default defineStep({
  type: 'gcp.label_snapshots',
  summary: 'Add labels (e.g. the stop LSN) to the snapshots a gcp.snapshot step took.',
  params: Params,
  outputs: Outputs,
  mutating: true,
  marksChanges: true,
  undoSummary:
    'set the labels each snapshot had before, unless a backup.write_labels completed the backup over them (then kept with them)',
  plan(ctx, p) {
    const s = gcpOf(ctx);
    const url = snapshotUrl(s, '{each snapshot}');
    return {
      action: 'label the snapshots (Compute API)',
      ops: [
        { kind: 'http', method: 'GET', url },
        {
          kind: 'http',
          method: 'POST',
          url: `${url}/setLabels`,
          body: { labels: labelsOf(p.labels), labelFingerprint: '(from the GET)' },
        },
        opWait('setLabels', 300),
      ],
      undo: {
        action: 'set the previous labels back',
        ops: [{ kind: 'http', method: 'POST', url: `${url}/setLabels` }],
      },
    };
  },
  async apply(ctx, p) {
    const compute = await computeOf(ctx);
    const names = namesOf(p.snapshots);
    const previous: Record<string, Record<string, string>> = {};
    for (const name of names) {
      const snap = await compute.findSnapshot(name, ctx.signal);
      if (!snap) throw new StepFailure(`snapshot ${name} not found`);
      previous[name] = { ...(snap.labels ?? {}) } as Record<string, string>;
      const wanted = { ...previous[name], ...labelsOf(p.labels) };
      ctx.changing();
      try {
        const op = await compute.setSnapshotLabels(name, wanted, snap.labelFingerprint ?? '', ctx.signal);
        await compute.waitDone(op, { timeoutMs: 300_000, signal: ctx.signal, what: `setLabels on ${name}` });
      } catch (err) {
        // A retry after a lost answer meets the new fingerprint (412): fine if the labels are set.
        const now =
          (err as { status?: number }).status === 412
            ? await compute.findSnapshot(name, ctx.signal)
            : undefined;
        const set = now && Object.entries(wanted).every(([k, v]) => now.labels?.[k] === v);
        if (!set) throw err;
      }
      ctx.log(
        `snapshot ${name} labeled ${Object.entries(labelsOf(p.labels))
          .map(([k, v]) => `${k}=${v}`)
          .join(' ')}`,
      );
    }
    return { labeled: names, previous };
  },
  async undo(ctx, _p, out) {
    const compute = await computeOf(ctx);
    for (const name of out.labeled) {
      const snap = await compute.findSnapshot(name, ctx.signal);
      if (!snap) continue;
      const op = await compute.setSnapshotLabels(
        name,
        out.previous[name] ?? {},
        snap.labelFingerprint ?? '',
        ctx.signal,
      );
      await compute.waitDone(op, { timeoutMs: 300_000, signal: ctx.signal, what: `setLabels on ${name}` });
    }
  },
});
