import type { Caller } from "../auth/caller.ts";

/**
 * The transport-neutral shape of the API: a request as any HTTP server sees
 * it, and a response to write back. Handlers take one and return the other,
 * so the decision path runs the same under express or plain node:http.
 */
export interface ApiRequest {
  method: string;
  path: string;
  /** Header names in lower case, as node:http delivers them. */
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The X-Request-ID echoed on the response (the client's, or one the PDP assigned). */
  requestId?: string;
  /** The TCP peer's address (a proxy, for forward-auth). */
  remoteAddress?: string;
  /** The verified client certificate of an mTLS connection: its subject CN and DNS SANs. */
  tlsClient?: { names: string[] };
  /**
   * The PDP's own caller, authenticated once from the headers before the
   * body was read (http/dispatcher.ts); absent on a public route.
   */
  caller?: Caller;
}

export interface ApiResponse {
  status: number;
  headers?: Record<string, string>;
  /** Serialized as JSON. */
  body: unknown;
}

/** The first value of a header, if any. */
export function headerValue(request: ApiRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The authenticated caller of a request whose route needs one. A handler
 * reached without one is miswired: that fails closed (a 500), it is never
 * served as an anonymous caller.
 */
export function callerOf(request: ApiRequest): Caller {
  if (request.caller === undefined) {
    throw new Error(`${request.method} ${request.path} reached its handler without a caller`);
  }
  return request.caller;
}
