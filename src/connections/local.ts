// Runs commands on the machine pgrunbook runs on, as child processes of sh.
import { spawn } from 'node:child_process';
import type { ExecOptions, ExecResult, Transport } from './transport.js';

/** The `local` transport: `sh -c LINE` per command, killed as a process group on abort. */
export class LocalTransport implements Transport {
  readonly kind = 'local' as const;

  exec(line: string, opts: ExecOptions = {}): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
      // detached: the command gets its own process group so an abort reaches its children too.
      const child = spawn('/bin/sh', ['-c', line], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
      let stdout = '';
      let stderr = '';
      const onAbort = () => {
        try {
          if (child.pid) process.kill(-child.pid, 'SIGTERM');
        } catch {
          // already gone
        }
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      child.stdout.setEncoding('utf8').on('data', (c: string) => {
        stdout += c;
        opts.onOutput?.('stdout', c);
      });
      child.stderr.setEncoding('utf8').on('data', (c: string) => {
        stderr += c;
        opts.onOutput?.('stderr', c);
      });
      child.on('error', (err) => {
        opts.signal?.removeEventListener('abort', onAbort);
        reject(err);
      });
      child.on('close', (code, sig) => {
        opts.signal?.removeEventListener('abort', onAbort);
        resolve({ exitCode: code, signal: sig, stdout, stderr });
      });
      child.stdin.on('error', () => {});
      child.stdin.end(opts.stdin ?? '');
      if (opts.signal?.aborted) onAbort();
    });
  }

  async close(): Promise<void> {}
}
