/**
 * The registry of protected MCP servers (`servers:` in PDP_CONFIG), used by
 * every API: a bearer token is verified against the canonical resource URI of
 * the one server the request is for, and a token for a server outside the
 * registry is refused. There is no "any audience of the issuer" fallback:
 * that is how a token minted for one server opens another.
 */

/** What a server name may be: the same in PDP_CONFIG, `/forward-auth/<name>` and `<name>/<tool>`. */
export const serverNamePattern = "^[A-Za-z0-9._-]{1,128}$";
const serverName = new RegExp(serverNamePattern);

/** Whether `name` can be a server name at all (registered or not). */
export function isServerName(name: string): boolean {
  return serverName.test(name);
}

/** The proxies whose own request headers the PDP can interpret. */
export const knownProxies = ["envoy", "nginx", "traefik", "caddy"] as const;
export type ProxyKind = (typeof knownProxies)[number];

/** One protected MCP server, as configured. */
export interface ServerSettings {
  /** The name used in `/forward-auth/<name>`, `<name>/<tool>` and `resource.properties.server`. */
  name: string;
  /** Canonical resource URI (RFC 8707): a token's `aud` must contain exactly this. */
  resource: string;
  /** RFC 9728 protected resource metadata URL, announced in `WWW-Authenticate`. */
  resourceMetadata: string;
  /**
   * The server refuses requests whose `Mcp-Method`/`Mcp-Name` headers
   * disagree with the body (SEP-2243), so the headers may be believed when a
   * proxy forwards no body. Without that guarantee they are the client's word.
   */
  enforcesMcpHeaders: boolean;
  /** The proxy in front of this server, whose own signals (Envoy's partial-body header) count. */
  proxy: ProxyKind | undefined;
}

/** Why no verified subject exists for this server; a deny reason on every API. */
export const serverUnknownReason = "server_unknown";

/**
 * The one spelling of a resource URI that tokens are compared against:
 * lower-case scheme and host, no default port, no fragment, no trailing slash
 * on an empty path. Undefined when the text is not an absolute http(s) URI
 * without credentials or fragment.
 */
export function canonicalResource(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return undefined;
  if (url.username !== "" || url.password !== "" || url.hash !== "" || text.includes("#")) {
    return undefined;
  }
  const path = url.pathname === "/" ? "" : url.pathname;
  return `${url.protocol}//${url.host}${path}${url.search}`;
}

/** RFC 9728 §3: the well-known path is inserted between the host and the resource's path. */
export function metadataUrlFor(resource: string): string {
  const url = new URL(resource);
  const path = url.pathname === "/" ? "" : url.pathname.replace(/\/+$/, "");
  return `${url.origin}/.well-known/oauth-protected-resource${path}`;
}

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
