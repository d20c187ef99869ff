/**
 * Names and URIs of protected MCP servers, as every party spells them: the
 * server name in `/forward-auth/<name>` and `<name>/<tool>`, the canonical
 * resource URI a token's audience is compared with (RFC 8707) and where its
 * protected resource metadata lives (RFC 9728).
 */

/** What a server name may be: the same in PDP_CONFIG, `/forward-auth/<name>` and `<name>/<tool>`. */
export const serverNamePattern = "^[A-Za-z0-9._-]{1,128}$";
const serverName = new RegExp(serverNamePattern);

/** Whether `name` can be a server name at all (registered or not). */
export function isServerName(name: string): boolean {
  return serverName.test(name);
}

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
