// GCE's error shapes: the JSON body of a failed HTTP call, and the `error` of a failed operation.

/** A failed call as GCE answers it: HTTP status, reason (errors[0].reason) and message. */
export class GceHttpError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

/** The JSON body GCE sends with a failed call. */
export function errorBody(status: number, reason: string, message: string): unknown {
  return { error: { code: status, message, errors: [{ message, domain: 'global', reason }] } };
}

/** 404 for a resource path like `projects/p/zones/z/disks/d`. */
export const notFound = (resource: string) =>
  new GceHttpError(404, 'notFound', `The resource '${resource}' was not found`);

/** 409 for a name already taken in its scope. */
export const alreadyExists = (resource: string) =>
  new GceHttpError(409, 'alreadyExists', `The resource '${resource}' already exists`);

/** 400 for a request field GCE rejects. */
export const invalid = (message: string) => new GceHttpError(400, 'invalid', message);

/** 400 for `Invalid value for field 'F': 'V'. WHY` — GCE's wording for a bad field. */
export const invalidField = (field: string, value: unknown, why: string) =>
  invalid(`Invalid value for field '${field}': '${value === undefined ? '' : String(value)}'. ${why}`);

/** 400 when a disk is still attached to an instance. */
export const inUse = (resource: string, user: string) =>
  new GceHttpError(
    400,
    'resourceInUseByAnotherResource',
    `The disk resource '${resource}' is already being used by '${user}'`,
  );

/** 400 when a resource is still being created or deleted. */
export const notReady = (resource: string) =>
  new GceHttpError(400, 'resourceNotReady', `The resource '${resource}' is not ready`);

/** 412 on a stale or missing label fingerprint. */
export const conditionNotMet = () =>
  new GceHttpError(
    412,
    'conditionNotMet',
    'Labels fingerprint either invalid or resource labels have changed',
  );

/** Default reason and message for an injected HTTP status, as GCE's front end words them. */
export function injectedDefaults(status: number): { reason: string; message: string } {
  switch (status) {
    case 400:
      return { reason: 'invalid', message: 'Invalid request.' };
    case 403:
      return { reason: 'forbidden', message: 'Required permission is missing.' };
    case 404:
      return { reason: 'notFound', message: 'The requested resource was not found.' };
    case 409:
      return { reason: 'alreadyExists', message: 'The resource already exists.' };
    case 412:
      return { reason: 'conditionNotMet', message: 'Precondition failed.' };
    case 429:
      return { reason: 'rateLimitExceeded', message: 'Rate Limit Exceeded' };
    case 500:
      return { reason: 'backendError', message: 'Internal error. Please try again.' };
    case 502:
      return { reason: 'backendError', message: 'Bad Gateway' };
    case 503:
      return { reason: 'backendError', message: 'The service is currently unavailable.' };
    default:
      return { reason: 'backendError', message: `HTTP ${status}` };
  }
}

/** The HTTP status and text a failed operation reports for an error code, as GCE sets them. */
export function httpForOperationCode(code: string): { status: number; text: string } {
  if (/QUOTA|PERMISSION|FORBIDDEN/.test(code)) return { status: 403, text: 'FORBIDDEN' };
  if (/NOT_FOUND/.test(code)) return { status: 404, text: 'NOT FOUND' };
  if (/ALREADY_EXISTS/.test(code)) return { status: 409, text: 'CONFLICT' };
  if (/RATE_LIMIT/.test(code)) return { status: 429, text: 'TOO MANY REQUESTS' };
  if (/INTERNAL|UNAVAILABLE/.test(code)) return { status: 500, text: 'INTERNAL SERVER ERROR' };
  if (/TIMEOUT/.test(code)) return { status: 503, text: 'SERVICE UNAVAILABLE' };
  return { status: 400, text: 'BAD REQUEST' };
}
