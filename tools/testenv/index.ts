// One import for tests: servers, OS-user helpers, process checks and throwaway btrfs filesystems.
export * from './bluegreen-inventory.js';
export * from './btrfs.js';
export * from './chef.js';
export * from './consul.js';
export * from './etcd.js';
export * from './osuser.js';
export * from './patroni.js';
export * from './pgbench-load.js';
export * from './pgbouncer.js';
export * from './ports.js';
export * from './postgres.js';
export * from './procs.js';
export * from './sshd.js';
