import type { ServerSettings } from "../config/index.ts";
import type { AccessRequest, Entity } from "../decision/decision.ts";
import { serverOf } from "../decision/resource-identity.ts";
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
  private readonly byResource: ReadonlyMap<string, ServerSettings>;

  constructor(servers: readonly ServerSettings[]) {
    this.byName = new Map(servers.map((server) => [server.name, server]));
    // The configuration refuses two servers with one resource, so this is one-to-one.
    this.byResource = new Map(servers.map((server) => [server.resource, server]));
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

  /**
   * An AuthZEN request for an `mcp_server` whose id is a registered server's
   * canonical resource URI, as the AuthZEN MCP binding (COAZ-MCP) writes it
   * (`$token.aud`), with the registry name in `resource.properties.server`:
   * the request names its server either way, and the policy finds the
   * catalog by name. Any other request is returned as it is. (The binding's
   * other rule, that a token's audience names the server of a tool, is not
   * followed: here the PDP verifies the token, so the server must come from
   * the enforcement point, or a token for one server would pass at another's.)
   */
  withBindingServer(request: AccessRequest): AccessRequest {
    const server = this.serverFor(request.resource);
    const resource = request.resource;
    if (server === undefined || resource.properties?.server === server.name) return request;
    return {
      ...request,
      resource: { ...resource, properties: { ...resource.properties, server: server.name } },
    };
  }

  /**
   * The registered server a resource belongs to: by name (resource-identity.ts),
   * or, for an `mcp_server`, by its canonical resource URI.
   */
  serverFor(resource: Entity): ServerSettings | undefined {
    const named = this.get(serverOf(resource));
    if (named !== undefined || resource.type !== "mcp_server") return named;
    return this.byResource.get(resource.id);
  }
}
