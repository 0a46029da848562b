import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { schemaFiles } from '../../../src/cli/commands/schema.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

describe('schemas/*.json are generated and up to date', () => {
  const generated = schemaFiles();

  it('the committed files are exactly the generated ones', () => {
    const committed = readdirSync(`${root}schemas`)
      .filter((f) => f.endsWith('.json'))
      .map((f) => `schemas/${f}`)
      .sort();
    expect(
      committed,
      'schemas/ holds a file the generator does not write (or misses one): run `npm run gen`',
    ).toEqual(Object.keys(generated).sort());
  });

  it.each(Object.keys(schemaFiles()))('%s matches byte for byte', (rel) => {
    const onDisk = readFileSync(`${root}${rel}`, 'utf8');
    // A plain equality check first, so that a stale file fails with the instruction, not a 30 kB diff.
    if (onDisk !== generated[rel]) {
      expect.fail(
        `${rel} is stale: it differs from what the step definitions generate. Run \`npm run gen\` and commit the result.`,
      );
    }
    expect(JSON.parse(onDisk)).toBeTypeOf('object');
  });
});

describe('docs/steps.md is generated and up to date', () => {
  it('matches what `pgrunbook steps --write` would write', async () => {
    const { STEPS_DOC, stepsDoc } = await import('../../../src/cli/commands/steps.js');
    const onDisk = readFileSync(`${root}${STEPS_DOC}`, 'utf8');
    if (onDisk !== stepsDoc()) {
      expect.fail(`${STEPS_DOC} is stale: run \`npm run gen\` and commit the result.`);
    }
    expect(onDisk).toContain('### `shell`');
  });
});

describe('docs/playbooks.md is generated and up to date', () => {
  it('matches what `pgrunbook vars --write` would write', async () => {
    const { PLAYBOOKS_DOC, playbooksDoc } = await import('../../../src/cli/commands/vars.js');
    const onDisk = readFileSync(`${root}${PLAYBOOKS_DOC}`, 'utf8');
    if (onDisk !== playbooksDoc(root)) {
      expect.fail(`${PLAYBOOKS_DOC} is stale: run \`npm run gen\` and commit the result.`);
    }
    expect(onDisk).toContain('## `playbooks/pg-major-upgrade.yml`');
    expect(onDisk).toContain('| `patroni_ttl` | integer | default 30 |');
  });
});

describe('docs/language.md lists the step types that always ask for approval', () => {
  it('names each of them between its markers', async () => {
    const { registry, stepTypes } = await import('../../../src/steps/registry.js');
    const gated = stepTypes.filter((t) => registry.get(t)!.confirm);
    expect(gated.length).toBeGreaterThan(0);
    const language = readFileSync(`${root}docs/language.md`, 'utf8');
    const [, section] =
      /<!-- approval-gated:begin -->([\s\S]*?)<!-- approval-gated:end -->/.exec(language) ?? [];
    expect(section, 'docs/language.md lacks its approval-gated list (between its markers)').toBeDefined();
    for (const t of gated) {
      expect(section, `docs/language.md must name ${t}: it always asks for approval`).toContain(`\`${t}\``);
    }
  });
});
