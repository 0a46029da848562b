// Reads what chef-client's default ("doc") formatter prints: the summary line, the resources that
// changed (or would change, under --why-run) and the error block of a failed run.
//
// The format, as Chef documents and prints it:
//   Recipe: cookbook::recipe
//     * template[/etc/x.conf] action create           ← a resource; " (up to date)" when unchanged
//       - update content in file /etc/x.conf from 3b1c9e to 8a3f12   ← what changed ("- Would …" in why-run)
//       --- /etc/x.conf	2024-…                      ← a unified diff, at the same indentation
//       +++ /etc/.chef-x20240101-…	2024-…
//       @@ -1 +1 @@
//   Chef Infra Client finished, 1/12 resources updated in 04 seconds   (Chef 15–16; "Chef Client" before)
//   Infra Phase complete, 1/12 resources updated in 04 seconds         (Chef 17 and later)
//   … N/M resources would have been updated                            (why-run)
//   Chef Infra Client failed. 0 resources updated in 02 seconds         ("Infra Phase failed." from 17)
// A failure prints a block between two rulers of "=" (title), then sections (heading, a ruler of
// "-", text), ending with "System Info:".

/** A resource Chef reported as changed: under --why-run, one that would change. */
export interface ChefResourceChange {
  /** e.g. `template[/etc/gitlab/gitlab.rb]` */
  resource: string;
  action: string;
  /** Chef's own words, without the leading "- " (and without "Would " in why-run) */
  changes: string[];
  /** the unified diff Chef printed for file content, dedented; empty when none */
  diff: string[];
}

/** What one chef-client run reported. */
export interface ChefRunReport {
  /**
   * finished: the summary line of a completed run was found;
   * failed: Chef's "failed." line was found (or an error block without it);
   * unknown: neither (another formatter, a wrapper, or output cut short)
   */
  outcome: 'finished' | 'failed' | 'unknown';
  /** the run was a why-run (nothing was changed) */
  whyRun: boolean;
  /** resources updated (or that would be); null without a summary line */
  updated: number | null;
  /** resources in the run; null when the summary has no total (Chef before 12) or is missing */
  total: number | null;
  /** as Chef prints it, e.g. "04 seconds", "01 minutes 19 seconds"; null when not printed */
  duration: string | null;
  durationSeconds: number | null;
  /** the summary line itself */
  summary: string | null;
  resources: ChefResourceChange[];
  /** the error block (title and the exception section), dedented and trimmed; null when none */
  error: string | null;
}

// Colour codes, should a host's chef-client config force them on.
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*[A-Za-z]`, 'g');
const SUMMARY =
  /^(?:(?:Chef|Cinc)(?: Infra)? Client (finished|failed)|Infra Phase (complete|failed))[,.] (\d+)(?:\/(\d+))? resources? (?:(would have been updated)|updated(?: in (.+?))?)\s*$/;
// Non-greedy name, so a log suffix on the same line ("action create[2024-…] INFO: …") is not
// taken for part of it; a name holding "]" still matches up to "] action ".
const RESOURCE = /^(\s*)\* ([A-Za-z_][\w:]*\[.*?\]) action (\w+)/;
const CHANGE = /^(\s*)- (.*)$/;
const LOG_LINE = /^\s*\[\d{4}-\d\d-\d\dT[^\]]*\] [A-Z]+: /;
const RULER = /^\s*={20,}\s*$/;
const HUNK = /^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@/;

const ERROR_MAX_LINES = 30;
const ERROR_MAX_LINE = 300;
const ERROR_MAX_CHARS = 3000;

/** Parses chef-client's output (stdout and stderr may be given together). */
export function parseChefOutput(text: string): ChefRunReport {
  const lines = text.replace(ANSI, '').replace(/\r/g, '').split('\n');
  const parsed = parseResources(lines);
  const report: ChefRunReport = {
    outcome: 'unknown',
    whyRun: false,
    updated: null,
    total: null,
    duration: null,
    durationSeconds: null,
    summary: null,
    resources: parsed.map(({ resource, action, changes, diff }) => ({ resource, action, changes, diff })),
    error: null,
  };
  // The last summary line counts: a wrapper may run Chef twice (e.g. after upgrading it).
  for (const raw of lines) {
    const m = SUMMARY.exec(raw.trim());
    if (!m) continue;
    report.outcome = m[1] === 'failed' || m[2] === 'failed' ? 'failed' : 'finished';
    report.updated = Number(m[3]);
    report.total = m[4] === undefined ? null : Number(m[4]);
    report.whyRun = m[5] !== undefined;
    report.duration = m[6] ?? null;
    report.durationSeconds = m[6] ? durationSeconds(m[6]) : null;
    report.summary = raw.trim();
  }
  if (report.outcome !== 'finished') report.error = errorBlock(lines);
  if (report.outcome === 'unknown' && report.error) report.outcome = 'failed';
  if (!report.summary && parsed.some((r) => r.whyRun)) report.whyRun = true;
  return report;
}

/** Seconds in Chef's pretty duration ("01 hours 02 minutes 03 seconds", "44.1144 seconds"). */
export function durationSeconds(text: string): number | null {
  let total = 0;
  let found = false;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?) (hours?|minutes?|seconds?)/g)) {
    found = true;
    const n = Number(m[1]);
    total += m[2]!.startsWith('hour') ? n * 3600 : m[2]!.startsWith('minute') ? n * 60 : n;
  }
  return found ? total : null;
}

type Open = ChefResourceChange & { indent: number; whyRun: boolean };

/** A diff being read: after "--- a" come "+++ b" and hunks whose line counts say where they end. */
interface DiffState {
  owner: Open;
  indent: number;
  expect: 'plus' | 'hunk' | 'lines';
  oldLeft: number;
  newLeft: number;
}

function parseResources(lines: string[]): Open[] {
  const all: Open[] = [];
  // Nested resources (inside a custom resource) are indented deeper: a change line belongs to
  // the innermost open resource indented less than it.
  let stack: Open[] = [];
  let diff: DiffState | undefined;
  for (const line of lines) {
    if (diff) {
      if (readDiffLine(diff, line)) continue;
      diff = undefined;
    }
    const indent = line.length - line.trimStart().length;
    const body = line.trimStart();
    if (!body || LOG_LINE.test(line)) continue;
    if (RULER.test(line)) {
      // An error block: its sections quote code and command output, not changes.
      stack = [];
      continue;
    }
    const res = RESOURCE.exec(line);
    if (res) {
      stack = stack.filter((r) => r.indent < indent);
      const r: Open = { resource: res[2]!, action: res[3]!, changes: [], diff: [], indent, whyRun: false };
      stack.push(r);
      all.push(r);
      continue;
    }
    const owner = stack.filter((r) => r.indent < indent).at(-1);
    if (!owner) {
      stack = [];
      continue;
    }
    const ch = CHANGE.exec(line);
    if (ch) {
      const would = ch[2]!.startsWith('Would ');
      owner.whyRun ||= would;
      owner.changes.push(would ? ch[2]!.slice('Would '.length) : ch[2]!);
    } else if (body.startsWith('--- ') && owner.changes.length > 0) {
      owner.diff.push(body.trimEnd());
      diff = { owner, indent, expect: 'plus', oldLeft: 0, newLeft: 0 };
    } else if (/^\(.*diff.*\)$/.test(body.trimEnd()) && owner.changes.length > 0) {
      // "(no diff)", "(diff output suppressed by config)", "(current file is binary, …)"
      owner.diff.push(body.trimEnd());
    }
  }
  return all.filter((r) => r.changes.length > 0);
}

/** Takes one line into the diff being read; false when the line is not part of it. */
function readDiffLine(d: DiffState, line: string): boolean {
  const lead = line.slice(0, d.indent);
  if (lead.trim() !== '') return false;
  // A blank context line may reach us with its trailing space trimmed away.
  const t = line.length <= d.indent ? ' ' : line.slice(d.indent);
  if (d.expect === 'plus') {
    if (!t.startsWith('+++ ')) return false;
    d.owner.diff.push(t.trimEnd());
    d.expect = 'hunk';
    return true;
  }
  if (d.expect === 'hunk' || (d.oldLeft <= 0 && d.newLeft <= 0)) {
    const h = HUNK.exec(t);
    if (!h) return false;
    d.owner.diff.push(t.trimEnd());
    d.expect = 'lines';
    d.oldLeft = Number(h[1] ?? 1);
    d.newLeft = Number(h[2] ?? 1);
    return true;
  }
  const mark = t[0];
  if (mark === ' ') {
    d.oldLeft--;
    d.newLeft--;
  } else if (mark === '-') d.oldLeft--;
  else if (mark === '+') d.newLeft--;
  else if (mark !== '\\') return false;
  d.owner.diff.push(t.trimEnd());
  return true;
}

/** The first error block, dedented (its title and first section: the exception and message), and Chef's "failed." line. */
function errorBlock(lines: string[]): string | null {
  const start = lines.findIndex((l) => RULER.test(l));
  const failedLine = lines.map((l) => l.trim()).find((l) => SUMMARY.test(l) && /failed\. /.test(l));
  const parts: string[] = [];
  if (start >= 0) {
    const indent = lines[start]!.length - lines[start]!.trimStart().length;
    const dedent = (l: string) => (l.slice(0, indent).trim() === '' ? l.slice(indent) : l.trimStart());
    let i = start + 1;
    for (; i < lines.length && !RULER.test(lines[i]!); i++)
      if (lines[i]!.trim()) parts.push(lines[i]!.trim());
    // The first section is the exception: its class, a ruler of "-" as long as the heading, the
    // message (with the output of a failed command). Later sections (declaration, compiled
    // resource, system info) are for whoever reads the stacktrace, not for deciding what to do.
    let sections = 0;
    for (i++; i < lines.length; i++) {
      const l = lines[i]!;
      const t = l.trim();
      if (RULER.test(l) || t === 'Running handlers:' || SUMMARY.test(t)) break;
      const heading =
        t !== '' &&
        (lines[i - 1] ?? '').trim() === '' &&
        (lines[i + 1] ?? '').trim() === '-'.repeat(t.length);
      if (heading && ++sections > 1) break;
      if (sections === 1) parts.push(dedent(l).trimEnd());
    }
    while (parts.length && parts.at(-1) === '') parts.pop();
  } else {
    // A failure before the converge may print no block with other formatters: Chef's FATAL log
    // line still names the exception.
    const fatal = lines
      .map((l) => l.trim())
      .filter((l) => / FATAL: /.test(l) && !/stacktrace|FATAL: -+$/i.test(l));
    parts.push(...fatal.slice(-3).map((l) => l.replace(LOG_LINE, '')));
  }
  if (parts.length === 0 && !failedLine) return null;
  const block = trimBlock(parts);
  return failedLine ? (block ? `${block}\n${failedLine}` : failedLine) : block;
}

function trimBlock(parts: string[]): string {
  const out: string[] = [];
  let chars = 0;
  for (const p of parts.slice(0, ERROR_MAX_LINES)) {
    const line = p.length > ERROR_MAX_LINE ? `${p.slice(0, ERROR_MAX_LINE)}…` : p;
    if (chars + line.length > ERROR_MAX_CHARS) break;
    out.push(line);
    chars += line.length + 1;
  }
  if (out.length < parts.length) out.push(`… (${parts.length - out.length} more lines in the output above)`);
  return out.join('\n');
}
