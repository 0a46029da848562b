// Every step type pgrunbook knows, by name. Adding a step type means adding it here.

import { restoreStep, verifyStep } from './backup/verify.js';
import writeLabels from './backup/write-labels.js';
import assertStep from './core/assert.js';
import pause from './core/pause.js';
import setFact from './core/set-fact.js';
import shell from './core/shell.js';
import waitFor from './core/wait-for.js';
import type { AnyStep } from './define.js';
import fileWrite from './file/write.js';
import fsSnapshot from './fs/snapshot.js';
import patroniPause from './patroni/pause.js';
import patroniResume from './patroni/resume.js';
import backupStart from './pg/backup-start.js';
import backupStop from './pg/backup-stop.js';
import pgQuery from './pg/query.js';

const all: AnyStep[] = [
  shell,
  pgQuery,
  assertStep,
  waitFor,
  setFact,
  fileWrite,
  pause,
  backupStart,
  backupStop,
  fsSnapshot,
  writeLabels,
  verifyStep,
  restoreStep,
  patroniPause,
  patroniResume,
];

/** Step types by their `type` name. */
export const registry: ReadonlyMap<string, AnyStep> = new Map(all.map((s) => [s.type, s]));

/** Step type names, sorted, for suggestions and docs. */
export const stepTypes: readonly string[] = [...registry.keys()].sort();
