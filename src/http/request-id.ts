import { randomUUID } from "node:crypto";
import type { NextFunction, Request, Response } from "express";

/** A request id a client may choose: printable ASCII without spaces, bounded. */
const acceptable = /^[\x21-\x7e]{1,128}$/;

export function acceptableRequestId(value: string): boolean {
  return acceptable.test(value);
}

declare module "express-serve-static-core" {
  interface Request {
    /** The X-Request-ID echoed on the response and recorded with the request. */
    requestId: string;
  }
}

/** Echoes a well-formed X-Request-ID, or assigns a fresh one. */
export function requestId(req: Request, res: Response, next: NextFunction): void {
  const incoming = req.get("x-request-id");
  req.requestId = incoming !== undefined && acceptableRequestId(incoming) ? incoming : randomUUID();
  res.setHeader("x-request-id", req.requestId);
  next();
}
