// Long-running operations: PENDING at once, RUNNING while their work runs, DONE after the work
// and a delay — or DONE with an error when the work fails or a failure was injected.
import { randomBytes } from 'node:crypto';
import { GceHttpError, httpForOperationCode } from './errors.js';
import type { Scope } from './links.js';
import { now, type OpRec, type Store } from './state.js';

/** What a handler asks to run as an operation. */
export interface OpSpec {
  scope: Scope;
  operationType: string;
  /** The target's relative path, e.g. `zones/z/disks/d`. */
  targetRel: string;
  targetId: string;
  requestId?: string;
  /** The slow part (copies, removals); a throw fails the operation. */
  work?: () => Promise<void>;
  /** Runs as the operation becomes DONE without error (e.g. a snapshot turns READY). */
  finish?: () => void;
  /** Undoes what the handler reserved before the operation started; runs when it fails. */
  rollback?: () => Promise<void> | void;
}

/** An injected operation failure (see ComputeEmulator.failOperations). */
export interface OperationFault {
  match: RegExp;
  code: string;
  message: string;
  times: number;
  httpErrorStatusCode?: number;
}

/** Starts, runs and waits for operations; holds the injected failures and the timing. */
export class Operations {
  readonly faults: OperationFault[] = [];
  private readonly running = new Set<Promise<void>>();
  private readonly stopping = new AbortController();

  constructor(
    private readonly store: Store,
    /** How long an operation takes beyond its work; later operations use the value current at their start. */
    public delayMs: number,
    /** How long `wait` blocks before answering with an operation that is not DONE. */
    public waitMaxMs: number,
  ) {}

  /** Registers a PENDING operation and runs it in the background. */
  start(spec: OpSpec): OpRec {
    const op: OpRec = {
      id: this.store.newId(),
      name: `operation-${Date.now()}-${randomBytes(7).toString('hex').slice(0, 13)}-${hex(4)}-${hex(4)}`,
      scope: spec.scope,
      operationType: spec.operationType,
      targetRel: spec.targetRel,
      targetId: spec.targetId,
      status: 'PENDING',
      progress: 0,
      insertTime: now(),
      clientOperationId: spec.requestId,
      finished: Promise.resolve(),
    };
    this.store.operations.set(op.name, op);
    if (spec.requestId) this.store.byRequestId.set(spec.requestId, op);
    const p = this.run(op, spec, this.delayMs);
    op.finished = p;
    this.running.add(p);
    void p.finally(() => this.running.delete(p));
    return op;
  }

  /** Resolves when the operation is DONE or after waitMaxMs, whichever is first. */
  async wait(op: OpRec): Promise<void> {
    if (op.status === 'DONE') return;
    await Promise.race([op.finished, this.sleep(this.waitMaxMs)]);
  }

  /** Cuts every pending delay short and waits for work in progress (copies) to end. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await Promise.all([...this.running]);
  }

  private async run(op: OpRec, spec: OpSpec, delayMs: number): Promise<void> {
    // Let the caller's HTTP answer show the operation PENDING, as GCE's does.
    await new Promise((r) => setImmediate(r));
    op.status = 'RUNNING';
    op.startTime = now();
    const fault = this.takeFault(op, spec);
    try {
      if (fault) throw fault;
      await spec.work?.();
      op.progress = 50;
      await this.sleep(delayMs);
      spec.finish?.();
      op.progress = 100;
    } catch (err) {
      await this.sleep(delayMs);
      try {
        await spec.rollback?.();
      } catch {
        // the failure being reported matters more than a leftover directory
      }
      const f = asFailure(err);
      op.error = { errors: [{ code: f.code, message: f.message }] };
      const http = httpForOperationCode(f.code);
      op.httpErrorStatusCode = f.httpErrorStatusCode ?? http.status;
      op.httpErrorMessage = http.text;
      op.progress = 100;
    }
    op.endTime = now();
    op.status = 'DONE';
  }

  private takeFault(op: OpRec, spec: OpSpec): OperationFault | undefined {
    const target = `projects/${this.store.project}/${spec.targetRel}`;
    for (const f of this.faults) {
      if (f.times <= 0) continue;
      f.match.lastIndex = 0;
      const byType = f.match.test(op.operationType);
      f.match.lastIndex = 0;
      if (byType || f.match.test(target)) {
        f.times--;
        return f;
      }
    }
    return undefined;
  }

  /** A delay that ends early when the emulator stops. */
  private sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.stopping.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const signal = this.stopping.signal;
      function done() {
        clearTimeout(t);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done);
    });
  }
}

const hex = (bytes: number) => randomBytes(bytes).toString('hex');

/** What an operation's `error` says for a thrown value. */
function asFailure(err: unknown): { code: string; message: string; httpErrorStatusCode?: number } {
  if (typeof err === 'object' && err !== null && 'code' in err && 'times' in err)
    return err as OperationFault;
  if (err instanceof GceHttpError)
    return {
      code: err.reason.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase(),
      message: err.message,
      httpErrorStatusCode: err.status,
    };
  return { code: 'INTERNAL_ERROR', message: err instanceof Error ? err.message : String(err) };
}
