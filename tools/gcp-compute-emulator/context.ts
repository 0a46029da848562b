// What a REST handler gets, and how handlers declare the routes they serve.
import type { Operations } from './operations.js';
import type { Store } from './state.js';

/** The emulator's state and operation runner, shared by every handler. */
export interface Ctx {
  store: Store;
  ops: Operations;
}

/** One parsed request. */
export interface Req {
  /** Path parameters named in the route pattern (`:zone`, `:disk`, ...). */
  params: Record<string, string>;
  query: Record<string, string>;
  /** The JSON body as an object (empty when there was none). */
  body: Record<string, unknown>;
  /** The validated `requestId` query parameter, when given. */
  requestId?: string;
}

/** A handler returns the JSON to answer with 200, or throws a GceHttpError. */
export type Handler = (ctx: Ctx, req: Req) => unknown | Promise<unknown>;

/** A route below `/compute/v1/projects/{project}/`, e.g. `zones/:zone/disks/:disk`. */
export interface Route {
  method: 'GET' | 'POST' | 'DELETE';
  pattern: string;
  handler: Handler;
  /** Accepts `requestId`: a repeated id answers with the first operation and does nothing. */
  mutating?: boolean;
}
