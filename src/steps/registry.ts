// Every step type pgrunbook knows, by name. Adding a step type means adding it here.

import keepBasebackup from './backup/keep-basebackup.js';
import backupRecover from './backup/recover.js';
import { restoreStep, verifyStep } from './backup/verify.js';
import writeLabels from './backup/write-labels.js';
import chefDisable from './chef/disable.js';
import chefEnable from './chef/enable.js';
import chefRun from './chef/run.js';
import assertStep from './core/assert.js';
import pause from './core/pause.js';
import setFact from './core/set-fact.js';
import shell from './core/shell.js';
import waitFor from './core/wait-for.js';
import type { AnyStep } from './define.js';
import fileWrite from './file/write.js';
import fsSnapshot from './fs/snapshot.js';
import { attachDisk as gcpAttachDisk, detachDisk as gcpDetachDisk } from './gcp/attach-disk.js';
import gcpBackupSnapshots from './gcp/backup-snapshots.js';
import gcpDeleteDisk from './gcp/delete-disk.js';
import gcpDiskFromSnapshot from './gcp/disk-from-snapshot.js';
import gcpLabelSnapshots from './gcp/label-snapshots.js';
import gcpSnapshot from './gcp/snapshot.js';
import patroniEditConfig from './patroni/edit-config.js';
import patroniIgnoreSlots from './patroni/ignore-slots.js';
import patroniPause from './patroni/pause.js';
import patroniReinit from './patroni/reinit.js';
import patroniRemoveCluster from './patroni/remove-cluster.js';
import patroniRestart from './patroni/restart.js';
import patroniResume from './patroni/resume.js';
import patroniStatus from './patroni/status.js';
import patroniSwitchover from './patroni/switchover.js';
import backupStart from './pg/backup-start.js';
import backupStop from './pg/backup-stop.js';
import pgBasebackup from './pg/basebackup.js';
import pgCarryConfig from './pg/carry-config.js';
import pgCheckExtensions from './pg/check-extensions.js';
import pgControldata from './pg/controldata.js';
import pgCopySequences from './pg/copy-sequences.js';
import pgCtl from './pg/ctl.js';
import pgInitdb from './pg/initdb.js';
import pgLogicalCatchUp from './pg/logical-catch-up.js';
import pgLogicalReadiness from './pg/logical-readiness.js';
import pgLogicalSlot from './pg/logical-slot.js';
import pgPublication from './pg/publication.js';
import pgQuery from './pg/query.js';
import pgRecoverToLsn from './pg/recover-to-lsn.js';
import pgSubscription from './pg/subscription.js';
import pgSyncReplicas from './pg/sync-replicas.js';
import pgUpdateExtensions from './pg/update-extensions.js';
import pgUpgrade from './pg/upgrade.js';
import pgbouncerPause from './pgbouncer/pause.js';
import pgbouncerPoint from './pgbouncer/point.js';
import pgbouncerResume from './pgbouncer/resume.js';

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
  pgControldata,
  pgCtl,
  pgInitdb,
  pgUpgrade,
  pgUpdateExtensions,
  pgLogicalReadiness,
  pgPublication,
  pgLogicalSlot,
  pgSubscription,
  pgLogicalCatchUp,
  pgCopySequences,
  pgBasebackup,
  pgRecoverToLsn,
  pgCarryConfig,
  pgCheckExtensions,
  pgSyncReplicas,
  patroniEditConfig,
  patroniIgnoreSlots,
  pgbouncerPause,
  pgbouncerResume,
  pgbouncerPoint,
  fsSnapshot,
  writeLabels,
  keepBasebackup,
  verifyStep,
  restoreStep,
  backupRecover,
  chefDisable,
  chefEnable,
  chefRun,
  patroniPause,
  patroniResume,
  patroniStatus,
  patroniSwitchover,
  patroniRestart,
  patroniReinit,
  patroniRemoveCluster,
  gcpSnapshot,
  gcpLabelSnapshots,
  gcpDiskFromSnapshot,
  gcpAttachDisk,
  gcpDetachDisk,
  gcpBackupSnapshots,
  gcpDeleteDisk,
];

/** Step types by their `type` name. */
export const registry: ReadonlyMap<string, AnyStep> = new Map(all.map((s) => [s.type, s]));

/** Step type names, sorted, for suggestions and docs. */
export const stepTypes: readonly string[] = [...registry.keys()].sort();
