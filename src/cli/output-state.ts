// Whether a run is in progress and whether its reader went away (a closed pipe).

/** Shared by main.ts (which sees EPIPE) and the run command (which must not die of it). */
export const outputState = { running: false, closed: false };
