import type { ServerSettings } from "../config/index.js";
/**
 * The registry of protected MCP servers (`servers:` in PDP_CONFIG), used by
 * every API: a bearer token is verified against the canonical resource URI of
 * the one server the request is for, and a token for a server outside the
 * registry is refused. There is no "any audience of the issuer" fallback:
 * that is how a token minted for one server opens another.
 */

/** Why no verified subject exists for this server; a deny reason on every API. */
export const serverUnknownReason = "server_unknown";

/** The configured servers by name. Names are case-sensitive: `FILES` is not `files`. */
export class ServerRegistry {
  private readonly byName: ReadonlyMap<string, ServerSettings>;

  constructor(servers: readonly ServerSettings[]) {
    this.byName = new Map(servers.map((server) => [server.name, server]));
  }

  /** The server of this name, or undefined when it is not registered. */
  get(name: string | undefined): ServerSettings | undefined {
    return name === undefined ? undefined : this.byName.get(name);
  }

  get size(): number {
    return this.byName.size;
  }

  names(): string[] {
    return [...this.byName.keys()];
  }
}
