// The fault injector for journals: every way of damaging a journal file that issue 11 found (and
// their neighbours), as named variants of one journal's bytes. Used by the unit tests of the chain
// and by the integration tests of `resume`.

/** One damaged journal: what was done to it, and the resulting file content. */
export interface Damage {
  kind: 'cut' | 'drop' | 'swap' | 'duplicate' | 'garbage' | 'null' | 'blank' | 'flip' | 'edit';
  name: string;
  text: string;
}

const GARBAGE = [
  'garbage',
  '{}',
  '[]',
  '"text"',
  '0',
  '{"type":"run_finished","status":"ok"}',
  '\u0000\u0001',
];

/**
 * Every damage of `text` (a whole journal, each line ending in a newline): cut at every byte (or a
 * sample, `cutEvery`, always including each line boundary and the bytes around it), each
 * line dropped, each pair of neighbours swapped, each line repeated, garbage / `null` / a blank
 * line inserted before each line, one byte changed in each line, and each event's JSON rewritten.
 */
export function* damages(text: string, opts: { cutEvery?: number } = {}): Generator<Damage> {
  const lines = text.split('\n').slice(0, -1);
  const join = (ls: string[]) => ls.map((l) => `${l}\n`).join('');
  // Cuts: at every line boundary and next to it, and every `cutEvery`-th byte in between.
  const every = opts.cutEvery ?? 1;
  for (let i = 0; i < text.length; i++) {
    const nearBoundary = i === 0 || text[i - 1] === '\n' || text[i - 2] === '\n' || text[i] === '\n';
    if (nearBoundary || i % every === 0)
      yield { kind: 'cut', name: `cut at byte ${i}`, text: text.slice(0, i) };
  }
  for (let i = 0; i < lines.length; i++) {
    const others = lines.filter((_, j) => j !== i);
    yield { kind: 'drop', name: `line ${i + 1} dropped`, text: join(others) };
    if (i + 1 < lines.length) {
      const swapped = [...lines];
      [swapped[i], swapped[i + 1]] = [swapped[i + 1]!, swapped[i]!];
      yield { kind: 'swap', name: `lines ${i + 1} and ${i + 2} swapped`, text: join(swapped) };
    }
    yield {
      kind: 'duplicate',
      name: `line ${i + 1} repeated`,
      text: join([...lines.slice(0, i + 1), lines[i]!, ...lines.slice(i + 1)]),
    };
    for (const g of GARBAGE)
      yield {
        kind: 'garbage',
        name: `${JSON.stringify(g)} before line ${i + 1}`,
        text: join([...lines.slice(0, i), g, ...lines.slice(i)]),
      };
    yield {
      kind: 'null',
      name: `null before line ${i + 1}`,
      text: join([...lines.slice(0, i), 'null', ...lines.slice(i)]),
    };
    yield {
      kind: 'blank',
      name: `blank line before line ${i + 1}`,
      text: join([...lines.slice(0, i), '', ...lines.slice(i)]),
    };
    const line = lines[i]!;
    const at = Math.floor(line.length / 2);
    const flipped = line.slice(0, at) + String.fromCharCode(line.charCodeAt(at) ^ 1) + line.slice(at + 1);
    yield {
      kind: 'flip',
      name: `one byte of line ${i + 1} changed`,
      text: join(lines.map((l, j) => (j === i ? flipped : l))),
    };
    // A plausible edit: a failed step turned into a success, keeping the old checksum field.
    const edited = line.replace('"status":"failed"', '"status":"ok"').replace('"ok":false', '"ok":true');
    if (edited !== line)
      yield {
        kind: 'edit',
        name: `line ${i + 1} edited to claim success`,
        text: join(lines.map((l, j) => (j === i ? edited : l))),
      };
  }
}
