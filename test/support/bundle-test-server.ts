import { once } from "node:events";
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer, type ServerOptions } from "node:https";
import type { AddressInfo, Socket } from "node:net";

/** What the test server saw of one request. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

export type BundleHandler = (request: IncomingMessage, response: ServerResponse) => void;

/**
 * A node:http (or https, with `tls`) server on 127.0.0.1 whose answer each
 * test sets with `handle`: the bundle service's failure modes (slow, 500,
 * garbage, truncated, wrong content type, oversized, 401, long polling).
 * `close()` destroys every open connection, held long polls included.
 */
export class BundleTestServer {
  readonly requests: SeenRequest[] = [];
  private handler: BundleHandler = (_request, response) => {
    response.writeHead(404).end();
  };
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;
  private readonly secure: boolean;

  private constructor(server: Server, secure: boolean) {
    this.server = server;
    this.secure = secure;
    server.on("request", (request: IncomingMessage, response: ServerResponse) => {
      this.requests.push({
        method: request.method ?? "",
        url: request.url ?? "",
        headers: request.headers,
      });
      this.handler(request, response);
    });
    server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
    });
    server.on("secureConnection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
    });
  }

  static async start(tls?: ServerOptions): Promise<BundleTestServer> {
    const server = tls === undefined ? createServer() : createHttpsServer(tls);
    const test = new BundleTestServer(server, tls !== undefined);
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    return test;
  }

  get origin(): string {
    const { port } = this.server.address() as AddressInfo;
    return `${this.secure ? "https" : "http"}://127.0.0.1:${port}`;
  }

  handle(handler: BundleHandler): void {
    this.handler = handler;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    this.server.close();
    await once(this.server, "close");
  }
}
