import { validateHeaderName, validateHeaderValue, type ServerResponse } from "node:http";
import type { ApiResponse } from "../api/api-types.ts";
import { ApiError } from "../errors.ts";

/**
 * A response the PDP built but cannot write: a header name or value that is
 * not legal HTTP (CR LF, a character beyond Latin-1, DEL…). Node's setHeader
 * throws on those; thrown inside a response callback that is an unhandled
 * rejection, which kills the process. Writers check first and answer 500.
 */
export class UnwritableResponseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnwritableResponseError";
  }
}

/**
 * Why these headers cannot be written, or undefined when they all can. The
 * message names the header, never its value (a value may carry a token, and
 * cannot be logged safely anyway when it holds CR LF).
 */
export function headerProblem(
  headers: Readonly<Record<string, string>> | undefined,
): string | undefined {
  if (headers === undefined) return undefined;
  for (const [name, value] of Object.entries(headers)) {
    try {
      validateHeaderName(name);
      validateHeaderValue(name, value);
    } catch {
      return `response header ${JSON.stringify(name.slice(0, 64))} is not a legal HTTP header ${legalName(name) ? "value" : "name"}`;
    }
  }
  return undefined;
}

function legalName(name: string): boolean {
  try {
    validateHeaderName(name);
    return true;
  } catch {
    return false;
  }
}

/** The PDP's answer when it cannot write what a handler returned. */
export const internalErrorResponse: ApiResponse = {
  status: 500,
  body: new ApiError("internal_error", "internal error; see the PDP log").toBody(),
};

/**
 * Writes `response` as JSON on node:http. Never throws: a header that cannot
 * be written or a body that cannot be serialized becomes a 500
 * `internal_error`, and `onFailure` hears why (to log it). Headers already on
 * `res` (X-Request-ID, Connection) stay.
 */
export function writeJson(
  res: ServerResponse,
  response: ApiResponse,
  onFailure: (error: Error) => void,
): void {
  if (res.headersSent || res.destroyed) return;
  let payload: string;
  let headers = response.headers;
  let status = response.status;
  try {
    const problem = headerProblem(headers);
    if (problem !== undefined) throw new UnwritableResponseError(problem);
    // JSON.stringify(undefined) is undefined: an empty body, as express's res.json writes it.
    const text: unknown = JSON.stringify(response.body);
    payload = typeof text === "string" ? text : "";
  } catch (error) {
    onFailure(error instanceof Error ? error : new UnwritableResponseError(String(error)));
    payload = JSON.stringify(internalErrorResponse.body);
    headers = undefined;
    status = internalErrorResponse.status;
  }
  try {
    res.statusCode = status;
    if (headers !== undefined)
      for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
    res.setHeader("content-type", "application/json; charset=utf-8");
    res.setHeader("content-length", Buffer.byteLength(payload));
    res.end(payload);
  } catch (error) {
    // Checked above, so this is a bug; the connection is the only thing left to end.
    onFailure(error instanceof Error ? error : new Error(String(error)));
    res.destroy();
  }
}
