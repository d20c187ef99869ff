import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { JWK } from "jose";

/** How the server answers: normally, with a 503, or by destroying the socket. */
export type JwksOutage = "none" | "status-503" | "destroy-socket";

/**
 * A real JWKS endpoint on 127.0.0.1 (ephemeral port) whose behaviour a test
 * steers: the key set it publishes, an outage, slowness. It counts every
 * connection and request it receives (on any path), so a test can also prove
 * that nobody talked to it.
 */
export class JwksServer {
  /** The keys served at /jwks.json. */
  keys: JWK[] = [];
  outage: JwksOutage = "none";
  /** Hold every answer this long before sending it (0: answer at once). */
  delayMs = 0;
  /** Answer /jwks.json with this instead of the key set (an unusable 200, a redirect…). */
  answer: { status: number; contentType: string; body: string } | undefined;
  /** Requests received, on any path, answered or not. */
  requests = 0;
  /** TCP connections accepted. */
  connections = 0;
  /** Path of every request received, in order. */
  readonly paths: string[] = [];

  private readonly server: Server;
  private readonly timers = new Set<NodeJS.Timeout>();
  private port = 0;

  private constructor() {
    this.server = createServer((request, response) => {
      this.handle(request, response);
    });
    this.server.on("connection", (_socket: Socket) => {
      this.connections += 1;
    });
  }

  /** Starts a server publishing `keys`. */
  static async start(keys: JWK[] = []): Promise<JwksServer> {
    const jwks = new JwksServer();
    jwks.keys = keys;
    await new Promise<void>((resolve) => {
      jwks.server.listen(0, "127.0.0.1", resolve);
    });
    jwks.port = (jwks.server.address() as AddressInfo).port;
    return jwks;
  }

  /** e.g. http://127.0.0.1:40123 */
  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The JWKS URL an issuer's jwks_uri points at. */
  get url(): string {
    return `${this.origin}/jwks.json`;
  }

  /** Requests received for /jwks.json. */
  get jwksRequests(): number {
    return this.paths.filter((path) => path === "/jwks.json").length;
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.server.closeAllConnections();
    await new Promise<void>((resolve, reject) => {
      this.server.close((error) => {
        if (error) reject(error);
        else resolve();
      });
    });
  }

  private handle(request: IncomingMessage, response: ServerResponse): void {
    this.requests += 1;
    this.paths.push(request.url ?? "");
    // Read at arrival: a test may change the switches while an answer is delayed.
    const outage = this.outage;
    const override = this.answer;
    const body = JSON.stringify({ keys: this.keys });
    const answer = () => {
      if (response.destroyed) return;
      if (outage === "destroy-socket") {
        request.socket.destroy();
        return;
      }
      if (outage === "status-503") {
        response.writeHead(503, { "content-type": "text/plain" }).end("unavailable");
        return;
      }
      if (request.url !== "/jwks.json") {
        response.writeHead(404, { "content-type": "text/plain" }).end("not found");
        return;
      }
      if (override !== undefined) {
        response
          .writeHead(override.status, { "content-type": override.contentType })
          .end(override.body);
        return;
      }
      response.writeHead(200, { "content-type": "application/json" }).end(body);
    };
    if (this.delayMs <= 0) {
      answer();
      return;
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      answer();
    }, this.delayMs);
    this.timers.add(timer);
  }
}
