import type { Server, ServerOptions } from "node:http";
import type { TransportConfig } from "../config/index.ts";

/**
 * The node:http options that bound one connection's hold on the process:
 * headers and whole requests within their timeouts (node answers 408 and
 * closes), idle keep-alive connections closed. Node checks the timeouts on
 * an interval (30 s by default, which would stretch a 10 s headers timeout
 * to 40 s); it runs here at a tenth of the shorter timeout, between 50 ms
 * and 1 s, a walk over the open connections.
 */
export function serverOptions(transport: TransportConfig): ServerOptions {
  const shorter = Math.min(transport.headersTimeoutMs, transport.requestTimeoutMs);
  return {
    headersTimeout: transport.headersTimeoutMs,
    requestTimeout: transport.requestTimeoutMs,
    keepAliveTimeout: transport.keepAliveTimeoutMs,
    connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.floor(shorter / 10))),
  };
}

/**
 * The connection cap, which node takes only as a property: every connection
 * beyond it is closed at once. And `Expect: 100-continue`: node would answer
 * 100 Continue before any handler runs, inviting a client the PDP has not
 * authenticated to send its body; handed to the request listener instead,
 * whose dispatcher says 100 only once the route and the caller are admitted.
 */
export function limitServer(server: Server, transport: TransportConfig): Server {
  server.maxConnections = transport.maxConnections;
  server.on("checkContinue", (req, res) => {
    server.emit("request", req, res);
  });
  return server;
}
