// The needs of one step on one host, as the preflight checks them: what the step declares from its
// rendered params, less what rests on a value only a run knows (checked then by the step itself,
// and named in the plan as not checked beforehand).
import type { AnyStep, PlanContext, StepNeeds } from '../steps/define.js';

/** The needs the preflight can check now, and a line for each it cannot. */
export function checkableNeeds(
  def: AnyStep,
  ctx: PlanContext,
  params: unknown,
  unknownParams: ReadonlySet<string>,
): { needs?: StepNeeds; unchecked: string[] } {
  if (!def.needs) return { unchecked: [] };
  let declared: StepNeeds;
  try {
    declared = def.needs(ctx, params);
  } catch (err) {
    // plan() accepted these values; a declaration that cannot read them is not a reason to stop.
    return { unchecked: [`what ${def.type} needs on the host: ${(err as Error).message}`] };
  }
  const unchecked: string[] = [];
  const known = <T extends { param?: string }>(items: T[] | undefined, what: (x: T) => string): T[] =>
    (items ?? []).filter((x) => {
      if (x.param === undefined || !unknownParams.has(x.param)) return true;
      unchecked.push(`${what(x)} in \`${x.param}\`: known only after apply`);
      return false;
    });
  const needs: StepNeeds = {
    binaries: known(declared.binaries, () => 'the binary'),
    writable: known(declared.writable, () => 'the destination'),
    archive: declared.archive,
    pairing: known(declared.pairing, () => 'the data directory'),
  };
  const empty =
    !needs.binaries!.length && !needs.writable!.length && !needs.archive && !needs.pairing!.length;
  return { needs: empty ? undefined : needs, unchecked };
}
