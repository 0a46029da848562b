// Templates inside sh scripts: each value is quoted for the place it lands in (bare word, '…' or
// "…"), so a value can never become shell code. `| raw` (or an explicit `| quote`) opts out.

import { quote } from '../util/shell.js';
import {
  evaluate,
  isTemplate,
  isWholeTemplate,
  renderTemplate,
  type Scope,
  stringify,
  Unknown,
} from './expressions.js';

/** Where a template sits in an sh script. */
type Context = 'bare' | 'single' | 'double';

const TEMPLATE = /\{\{(.*?)\}\}/gs;
const OPT_OUT = /\|\s*(raw|quote)\s*$/;

/** The quoting context at the end of `text`, starting from `state`. */
function scan(text: string, state: Context): Context {
  let s = state;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (s === 'single') {
      if (c === "'") s = 'bare';
    } else if (s === 'double') {
      if (c === '\\') i++;
      else if (c === '"') s = 'bare';
    } else if (c === '\\') i++;
    else if (c === "'") s = 'single';
    else if (c === '"') s = 'double';
    else if (c === '#' && (i === 0 || /\s/.test(text[i - 1]!))) {
      // a comment runs to the end of the line
      const nl = text.indexOf('\n', i);
      if (nl < 0) return s;
      i = nl;
    }
  }
  return s;
}

function escapeFor(ctx: Context, value: string): string {
  if (ctx === 'single') return value.replace(/'/g, `'\\''`);
  if (ctx === 'double') return value.replace(/[\\"$`]/g, '\\$&');
  return quote(value);
}

/** Renders an sh script template with every interpolated value quoted for its context. */
export function renderShellTemplate(script: string, scope: Scope): unknown {
  if (!isTemplate(script)) return script;
  // A whole `{{ expr }}` is a command (or an argv list) passed in a variable, used as given.
  if (isWholeTemplate(script)) return renderTemplate(script, scope);
  let out = '';
  let ctx: Context = 'bare';
  let last = 0;
  let unknown = false;
  for (const m of script.matchAll(TEMPLATE)) {
    const literal = script.slice(last, m.index);
    ctx = scan(literal, ctx);
    out += literal;
    const expr = m[1]!.trim();
    const optOut = OPT_OUT.exec(expr);
    const v = evaluate(optOut?.[1] === 'raw' ? expr.replace(OPT_OUT, '') : expr, scope);
    if (v instanceof Unknown) {
      unknown = true;
      out += v.toString();
    } else out += optOut ? stringify(v) : escapeFor(ctx, stringify(v));
    last = (m.index ?? 0) + m[0].length;
  }
  out += script.slice(last);
  return unknown ? new Unknown(script, out) : out;
}
