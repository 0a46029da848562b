// The commands behind the command line: argv → the command's function → an exit code. User
// mistakes are thrown (PgrunbookError); src/cli/main.ts turns them into messages and exit codes.
import { PgrunbookError, UsageError } from '../errors.js';
import { parseCommandArgs, parseExtraVars } from './args.js';

const USAGE = `pgrunbook — declarative runbooks for PostgreSQL operations

Usage:
  pgrunbook validate PLAYBOOK [-i INVENTORY] [--limit PATTERN] [-e k=v]...
  pgrunbook plan PLAYBOOK -i INVENTORY [--format text|json|markdown] [--check | --assume-leader HOST[,HOST]] [--out PLAN.json] [--limit PATTERN] [-e k=v]...
  pgrunbook run PLAYBOOK -i INVENTORY [--yes] [--output plain|json] [--report FILE.md] [--limit PATTERN] [--break-lock] [--adopt-pause] [-e k=v]...
  pgrunbook run --plan PLAN.json [--yes] [--output plain|json] [--report FILE.md] [-e k=v]...
  pgrunbook resume RUN_ID [-e NAME=VALUE (a value its journal masked)] [--yes] [--rerun-unfinished] [--output plain|json] [--report FILE.md]
  pgrunbook schema [playbook|inventory] [--write]
  pgrunbook steps [TYPE] [--markdown | --write]
  pgrunbook vars PLAYBOOK [--markdown] | vars --write
  pgrunbook lab up|demo|gcp up|gcp down|down|status [--version 15|13] [--dir DIR]

Exit codes: 0 ok, 1 a step failed and was compensated, 2 invalid input (nothing ran), 3 compensation failed,
70 an internal error of pgrunbook.
`;

/** Runs one command in this process; returns its exit code (user mistakes are thrown). */
export async function dispatch(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return command ? 0 : 2;
  }
  const { values: v, positionals: pos } = parseCommandArgs(rest);
  if (v.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const out = (s: string) => process.stdout.write(s);
  const extraVars = parseExtraVars(v['extra-vars']);
  const need = (what: string) => {
    if (!pos[0]) throw new UsageError(`${command} needs ${what}`);
    return pos[0];
  };
  switch (command) {
    case 'validate': {
      const { validateCommand } = await import('./commands/validate.js');
      return validateCommand(need('a PLAYBOOK'), { inventory: v.inventory, extraVars, limit: v.limit }, out);
    }
    case 'plan': {
      const { planCommand } = await import('./commands/plan.js');
      return planCommand(
        need('a PLAYBOOK'),
        {
          inventory: v.inventory,
          extraVars,
          limit: v.limit,
          format: v.format,
          check: v.check,
          assumeLeader: v['assume-leader'],
          out: v.out,
        },
        out,
      );
    }
    case 'run': {
      const { runCommand } = await import('./commands/run.js');
      // With --plan the saved plan names its playbook and inventory.
      return runCommand(v.plan ? pos[0] : need('a PLAYBOOK'), {
        plan: v.plan,
        breakLock: v['break-lock'],
        adoptPause: v['adopt-pause'],
        inventory: v.inventory,
        extraVars,
        limit: v.limit,
        yes: v.yes,
        output: v.output,
        report: v.report,
      });
    }
    case 'resume': {
      const { resumeCommand } = await import('./commands/run.js');
      return resumeCommand(need('a RUN_ID'), {
        extraVars,
        yes: v.yes,
        output: v.output,
        report: v.report,
        rerunUnfinished: v['rerun-unfinished'],
      });
    }
    case 'schema': {
      const { schemaCommand } = await import('./commands/schema.js');
      return schemaCommand(pos, v.write === true, out);
    }
    case 'vars': {
      const { varsCommand } = await import('./commands/vars.js');
      if (v.write) return varsCommand([], { write: true }, out);
      return varsCommand([need('a PLAYBOOK')], { markdown: v.markdown }, out);
    }
    case 'steps': {
      const { stepsCommand } = await import('./commands/steps.js');
      return stepsCommand(pos, { markdown: v.markdown, write: v.write }, out);
    }
    case 'lab': {
      const { labCommand } = await import('./commands/lab.js');
      return labCommand(pos, { dir: v.dir, version: v.version }, out);
    }
    default:
      throw new UsageError(`unknown command "${command}"\n\n${USAGE}`);
  }
}

/** The exit code for what dispatch threw: 2 for the user's or the environment's, 70 for a bug. */
export function exitCodeOf(err: unknown): 2 | 70 {
  return err instanceof PgrunbookError ? 2 : 70;
}
