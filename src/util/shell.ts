// Quoting for POSIX sh: every value interpolated into a command line goes through here.

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** Quotes one argument for POSIX sh; safe words are left bare so plans stay readable. */
export function quote(arg: string): string {
  if (arg === '') return "''";
  if (SAFE.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** Joins an argv into one sh command line with each element quoted. */
export function joinArgv(argv: readonly string[]): string {
  return argv.map(quote).join(' ');
}

/** Marks text that is already shell syntax so `sh` does not quote it. */
export class Raw {
  constructor(readonly text: string) {}
}

/** Tagged template: interpolated values are quoted (arrays become quoted words), Raw is kept. */
export function sh(strings: TemplateStringsArray, ...values: unknown[]): string {
  let out = strings[0] ?? '';
  values.forEach((v, i) => {
    if (v instanceof Raw) out += v.text;
    else if (Array.isArray(v)) out += v.map((x) => quote(String(x))).join(' ');
    else out += quote(String(v));
    out += strings[i + 1] ?? '';
  });
  return out;
}
