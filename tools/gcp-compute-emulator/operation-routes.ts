// zoneOperations, regionOperations and globalOperations: get, wait and list.
import type { Ctx, Req, Route } from './context.js';
import { notFound } from './errors.js';
import { page } from './filter.js';
import { resourcePath, type Scope, scopePath, selfLink } from './links.js';
import { renderOperation } from './render.js';
import type { OpRec } from './state.js';

const scopeOf = (req: Req): Scope =>
  req.params.zone !== undefined
    ? { kind: 'zone', name: req.params.zone }
    : req.params.region !== undefined
      ? { kind: 'region', name: req.params.region }
      : { kind: 'global' };

/** An operation by name or id, only in the scope it belongs to (as GCE answers). */
function find(ctx: Ctx, req: Req): OpRec {
  const scope = scopeOf(req);
  const op = ctx.store.findOperation(req.params.operation!);
  if (!op || scopePath(op.scope) !== scopePath(scope))
    throw notFound(resourcePath(ctx.store.project, `${scopePath(scope)}/operations/${req.params.operation}`));
  return op;
}

async function wait(ctx: Ctx, req: Req) {
  const op = find(ctx, req);
  await ctx.ops.wait(op);
  return renderOperation(ctx.store, op);
}

function list(ctx: Ctx, req: Req) {
  const scope = scopePath(scopeOf(req));
  const all = [...ctx.store.operations.values()]
    .filter((op) => scopePath(op.scope) === scope)
    .map((op) => renderOperation(ctx.store, op));
  return {
    kind: 'compute#operationList',
    id: resourcePath(ctx.store.project, `${scope}/operations`),
    ...page(all, req.query),
    selfLink: selfLink(ctx.store.project, `${scope}/operations`),
  };
}

function routesFor(prefix: 'zones/:zone' | 'regions/:region' | 'global'): Route[] {
  return [
    { method: 'GET', pattern: `${prefix}/operations`, handler: list },
    {
      method: 'GET',
      pattern: `${prefix}/operations/:operation`,
      handler: (ctx, req) => renderOperation(ctx.store, find(ctx, req)),
    },
    { method: 'POST', pattern: `${prefix}/operations/:operation/wait`, handler: wait },
  ];
}

/** Operation routes of all three scopes. */
export const operationRoutes: Route[] = [
  ...routesFor('zones/:zone'),
  ...routesFor('regions/:region'),
  ...routesFor('global'),
];
