// Types of floor.mjs (plain JavaScript so that `node bench/floor.mjs` runs without a compiler).

export interface FloorConfig {
  host: string;
  port: number;
  user: string;
  identityFile: string;
  knownHostsFile: string;
  hosts: number;
  steps: number;
  command: string;
  expectStdout: string;
}

export interface FloorResult {
  /** from before the first connect to the last command's exit */
  ms: number;
  /** until every connection was authenticated */
  connectMs: number;
  ok: number;
  bad: number;
  error?: string;
}

export function runFloor(cfg: FloorConfig): Promise<FloorResult>;
