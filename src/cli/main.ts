// The command line: argv → commands. The only place that calls process.exit.
import { formatProblem, PgrunbookError, UsageError, ValidationError } from '../errors.js';
import { redact } from '../util/secret.js';
import { parseCommandArgs, parseExtraVars } from './args.js';
import { outputState } from './output-state.js';

const USAGE = `pgrunbook — declarative runbooks for PostgreSQL operations

Usage:
  pgrunbook validate PLAYBOOK [-i INVENTORY] [--limit PATTERN] [-e k=v]...
  pgrunbook plan PLAYBOOK -i INVENTORY [--format text|json|markdown] [--check | --assume-leader HOST] [--limit PATTERN] [-e k=v]...
  pgrunbook run PLAYBOOK -i INVENTORY [--yes] [--output plain|json] [--report FILE.md] [--limit PATTERN] [-e k=v]...
  pgrunbook resume RUN_ID [--yes] [--output plain|json] [--report FILE.md]
  pgrunbook schema [playbook|inventory] [--write]
  pgrunbook steps [TYPE] [--markdown | --write]
  pgrunbook lab up|demo|gcp up|gcp down|down|status [--version 15|13] [--dir DIR]

Exit codes: 0 ok, 1 a step failed and was compensated, 2 invalid input, 3 compensation failed.
`;

async function main(argv: string[]): Promise<number> {
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
        },
        out,
      );
    }
    case 'run': {
      const { runCommand } = await import('./commands/run.js');
      return runCommand(need('a PLAYBOOK'), {
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
      return resumeCommand(need('a RUN_ID'), { yes: v.yes, output: v.output, report: v.report });
    }
    case 'schema': {
      const { schemaCommand } = await import('./commands/schema.js');
      return schemaCommand(pos, v.write === true, out);
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

// A reader that went away (`| head`) is not an error of ours: stop quietly — but never in the
// middle of a run, which must finish its clean-up (the journal still records everything).
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    outputState.closed = true;
    if (!outputState.running) process.exit(0);
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ValidationError) {
      for (const p of err.problems) process.stderr.write(`${formatProblem(p)}\n`);
      const n = err.problems.length;
      process.stderr.write(`${n} problem${n === 1 ? '' : 's'} found; nothing was run.\n`);
      process.exit(2);
    }
    if (err instanceof PgrunbookError) {
      process.stderr.write(`pgrunbook: ${redact(err.message)}\n`);
      process.exit(2);
    }
    // A bug of ours: the stack helps us, and the message says so.
    process.stderr.write(
      `pgrunbook: internal error (please report): ${redact(err instanceof Error ? (err.stack ?? err.message) : String(err))}\n`,
    );
    process.exit(70);
  },
);
