import express, { type Request, type RequestHandler, type Response } from "express";
import type { ApiHandler } from "./lean-listener.js";
import { tlsClientOf } from "./tls-client.js";

/**
 * Reads the raw body (bounded) for handlers that parse it themselves: parsing
 * is the API layer's job so it behaves the same under any server.
 */
export function rawBody(maxBytes: number): RequestHandler {
  return express.raw({ type: () => true, limit: maxBytes });
}

/** Runs a transport-neutral handler for an express request. Thrown errors go to the error handler. */
export function serve(handler: ApiHandler): RequestHandler {
  return async (req: Request, res: Response) => {
    const body: unknown = req.body;
    const tlsClient = tlsClientOf(req.socket);
    const response = await handler({
      method: req.method,
      path: req.path,
      headers: req.headers,
      body: Buffer.isBuffer(body) ? body : Buffer.alloc(0),
      requestId: req.requestId,
      ...(tlsClient === undefined ? {} : { tlsClient }),
      ...(req.socket.remoteAddress === undefined
        ? {}
        : { remoteAddress: req.socket.remoteAddress }),
    });
    res.status(response.status);
    if (response.headers !== undefined) res.set(response.headers);
    res.json(response.body);
  };
}

/** 405 for every method a path does not serve, with the Allow header. */
export function methodNotAllowed(allowed: readonly string[]): RequestHandler {
  return (req, res) => {
    res
      .status(405)
      .set("allow", allowed.join(", "))
      .json({
        code: "method_not_allowed",
        message: `${req.method} is not allowed here; use ${allowed.join(" or ")}`,
      });
  };
}
