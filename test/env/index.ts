// One import for tests: servers, OS-user helpers and process checks.
export * from './osuser.js';
export * from './ports.js';
export * from './postgres.js';
export * from './procs.js';
export * from './sshd.js';
