/**
 * The protected MCP servers of the end-to-end runs, each behind its own proxy
 * site (its own port on the proxy). `files` is the README's: safe defaults.
 * The others exist only to show, honestly configured, what the defaults
 * protect against and what an operator's opt-in changes.
 */

/** Which listener of the test MCP server a site forwards to. */
export type Upstream = "plain" | "sep2243";

export interface Site {
  /** The name in `/forward-auth/<name>` and in the catalog (`<name>/<tool>`). */
  server: string;
  /**
   * `plain`: the SDK server as is (it neither reads nor checks Mcp-Method /
   * Mcp-Name); `sep2243`: the same server behind SEP-2243's header check.
   */
  upstream: Upstream;
  /** The entry in the PDP's `servers:`; undefined: the server is not registered. */
  registration: Registration | undefined;
}

/** A server's entry in the PDP's `servers:`, as far as these sites use it. */
export interface Registration {
  resource: string;
  enforces_mcp_headers?: true;
  speaks_mcp_2026_07_28?: true;
}

const resource = (name: string) => `https://mcp.example.com/${name}`;

export const sites = {
  /** The README's server: no header trust (Mcp-* headers without a body are not believed). */
  files: { server: "files", upstream: "plain", registration: { resource: resource("files") } },
  /**
   * An MCP server that refuses requests whose Mcp-Method/Mcp-Name disagree with
   * the body (SEP-2243): the one case where `enforces_mcp_headers: true` is
   * honest, and what lets a headers-only proxy tell a read from a delete.
   */
  sep2243: {
    server: "files-sep2243",
    upstream: "sep2243",
    registration: { resource: resource("files-sep2243"), enforces_mcp_headers: true },
  },
  /**
   * A deliberate misconfiguration, kept to show why the opt-in is dangerous:
   * `enforces_mcp_headers: true` for a server that does not check (the KNOWN
   * LIMIT test: a lying Mcp-Name runs delete_repo for a reader).
   */
  misconfigured: {
    server: "files-misconfigured",
    upstream: "plain",
    registration: { resource: resource("files-misconfigured"), enforces_mcp_headers: true },
  },
  /**
   * The same server (2026-07-28 requests reach its SDK v2 handler, which refuses
   * headers that disagree with the body) marked as speaking 2026-07-28: a request
   * declaring exactly that revision is decided from its mandatory headers alone.
   */
  modern: {
    server: "files-2026",
    upstream: "plain",
    registration: { resource: resource("files-2026"), speaks_mcp_2026_07_28: true },
  },
  /** A proxy route to a name the PDP does not know: refused with server_unknown. */
  unregistered: { server: "files-unregistered", upstream: "plain", registration: undefined },
} satisfies Record<string, Site>;

export type SiteName = keyof typeof sites;

export const siteNames = Object.keys(sites) as SiteName[];

/** The canonical resource URI (token audience) of a registered site's server. */
export function resourceOf(name: SiteName): string {
  const registration: Site["registration"] = sites[name].registration;
  if (registration === undefined) throw new Error(`${name} is not registered in the PDP`);
  return registration.resource;
}

/** RFC 9728's metadata URL of a registered server (the PDP's default for `resource_metadata`). */
export function resourceMetadataOf(name: SiteName): string {
  const url = new URL(resourceOf(name));
  return `${url.origin}/.well-known/oauth-protected-resource${url.pathname}`;
}

/** The PDP's `servers:` registry for these sites. */
export function serverRegistry(): Record<string, Registration> {
  const registry: Record<string, Registration> = {};
  for (const name of siteNames) {
    const site: Site = sites[name];
    if (site.registration !== undefined) registry[site.server] = site.registration;
  }
  return registry;
}
