// docs/architecture.md says which folder of src/ may import which; this holds the code to it.
// The table is read from the page itself, so the page and the imports cannot disagree.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const src = join(root, 'src');

interface Rule {
  everything: boolean;
  /** folder (or folder/file without extension) → types only */
  allowed: Map<string, boolean>;
}

/** The "may import" column of the folders table, by folder. */
function rules(): Map<string, Rule> {
  const page = readFileSync(join(root, 'docs/architecture.md'), 'utf8');
  const out = new Map<string, Rule>();
  for (const line of page.split('\n')) {
    const m = /^\| `([a-z-]+)\/` \| .* \| (.*) \|$/.exec(line);
    if (!m) continue;
    const rule: Rule = { everything: m[2]!.trim() === 'everything', allowed: new Map() };
    for (const item of m[2]!.matchAll(/`([a-z/-]+)`( \(types\))?/g)) rule.allowed.set(item[1]!, !!item[2]);
    out.set(m[1]!, rule);
  }
  return out;
}

function* files(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* files(p);
    else if (p.endsWith('.ts')) yield p;
  }
}

/** Every relative import of a file: the imported path inside src/ (no extension), and type-only. */
function importsOf(file: string): { target: string; typeOnly: boolean; line: string }[] {
  const text = readFileSync(file, 'utf8');
  const out: { target: string; typeOnly: boolean; line: string }[] = [];
  const re = /^(import|export)\s+(type\s+)?[^;]*?from\s+'(\.[^']+)'/gms;
  for (const m of text.matchAll(re)) {
    const abs = resolve(dirname(file), m[3]!).replace(/\.js$/, '');
    out.push({
      target: relative(src, abs),
      typeOnly: !!m[2] || /^import\s+\{\s*type\s[^}]*\}$/.test(m[0].replace(/\s+from.*$/s, '').trim()),
      line: m[0].split('\n')[0]!,
    });
  }
  return out;
}

describe('docs/architecture.md matches the imports', () => {
  const table = rules();

  it('the page lists every folder of src/', () => {
    const folders = readdirSync(src).filter((f) => statSync(join(src, f)).isDirectory());
    expect([...table.keys()].sort()).toEqual(folders.sort());
  });

  it('every import of every folder is one the page allows', () => {
    const bad: string[] = [];
    for (const file of files(src)) {
      const folder = relative(src, file).split('/')[0]!;
      const rule = table.get(folder);
      if (!rule || rule.everything) continue;
      for (const imp of importsOf(file)) {
        const [top, rest] = [imp.target.split('/')[0]!, imp.target.split('/').slice(0, 2).join('/')];
        if (top === folder || top === 'errors') continue;
        const typesOnly = rule.allowed.has(rest) ? rule.allowed.get(rest) : rule.allowed.get(top);
        if (typesOnly === undefined)
          bad.push(`${relative(root, file)}: ${imp.line} (${folder}/ may not import ${top}/)`);
        else if (typesOnly && !imp.typeOnly)
          bad.push(`${relative(root, file)}: ${imp.line} (${folder}/ may import only types from ${top}/)`);
      }
    }
    expect(bad).toEqual([]);
  });

  it('the check itself catches a forbidden import (runner → plan)', () => {
    const rule = table.get('runner')!;
    expect(rule.allowed.has('plan')).toBe(false);
    expect(rule.allowed.has('steps')).toBe(false);
    expect(rule.allowed.get('steps/define')).toBe(false);
    expect(table.get('inventory')!.allowed.get('connections')).toBe(true);
  });
});
