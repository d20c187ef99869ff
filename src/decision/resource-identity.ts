import { ApiError } from "../errors.ts";
import type { Entity } from "./decision.ts";

/** The property that names a resource of each MCP type, beside `resource.id`. */
const nameProperty: Readonly<Record<string, string>> = {
  tool: "tool",
  resource: "uri",
  prompt: "prompt",
  task: "task",
};

/**
 * Gives a resource one identity, read from `resource.id`, so that what the
 * policy judges and what the decision record names cannot differ:
 *
 * - the server is the `<server>/` prefix of the id (the AuthZEN MCP binding's
 *   `<server>/<tool>`), or `properties.server` when the id has no such prefix;
 * - the name is the rest of the id (or all of it);
 * - `properties.server`, `properties.tool` and the type's own name property
 *   (`uri`, `prompt`) may repeat these, but a value that disagrees is a 400
 *   `resource_mismatch`: it is never silently preferred or overridden;
 * - an `mcp_server` resource's id is the server itself.
 *
 * The result carries `properties.server` (when known) and `properties.tool`
 * (the name, for every type but `mcp_server`), which is what the policy reads.
 */
export function resourceIdentity(resource: Entity, pointer = "/resource"): Entity {
  const properties = resource.properties ?? {};
  const sentServer = properties.server;
  if (sentServer !== undefined && typeof sentServer !== "string") {
    throw mismatch(`${pointer}/properties/server`, "resource.properties.server must be a string");
  }
  if (resource.type === "mcp_server") {
    if (sentServer !== undefined && sentServer !== resource.id) {
      throw mismatch(
        `${pointer}/properties/server`,
        `resource.properties.server ${JSON.stringify(sentServer)} is not the mcp_server id ${JSON.stringify(resource.id)}`,
      );
    }
    if (properties.tool !== undefined) {
      throw mismatch(`${pointer}/properties/tool`, "an mcp_server resource names no tool");
    }
    return { ...resource, properties: { ...properties, server: resource.id } };
  }

  const { server, name } = splitId(resource.id, sentServer);

  const claims: [string, unknown][] = [["tool", properties.tool]];
  const own = nameProperty[resource.type];
  if (own !== undefined && own !== "tool") claims.push([own, properties[own]]);
  for (const [key, value] of claims) {
    if (value !== undefined && value !== null && value !== name) {
      throw mismatch(
        `${pointer}/properties/${key}`,
        `resource.properties.${key} ${JSON.stringify(value)} does not match resource.id ${JSON.stringify(resource.id)}`,
      );
    }
  }
  const identified: Record<string, unknown> = { ...properties, tool: name };
  if (server !== undefined) identified.server = server;
  // A resource of no server and no claimed name stays as sent: not every policy is about MCP.
  if (server === undefined && properties.tool === undefined) return resource;
  return { ...resource, properties: identified };
}

/**
 * The server a resource belongs to, read as resourceIdentity reads it (the
 * `<server>/` prefix of the id, else `properties.server`; an `mcp_server`'s
 * id), without its agreement checks: for callers that hold a request
 * resourceIdentity may not have seen.
 */
export function serverOf(resource: Entity): string | undefined {
  const sent = resource.properties?.server;
  if (resource.type === "mcp_server") return resource.id;
  return splitId(resource.id, typeof sent === "string" ? sent : undefined).server;
}

/** `<server>/<name>` when the prefix is the sent server (or none was sent); else the whole id. */
function splitId(
  id: string,
  sentServer: string | undefined,
): { server: string | undefined; name: string } {
  const slash = id.indexOf("/");
  const prefix = slash > 0 ? id.slice(0, slash) : undefined;
  if (prefix !== undefined && (sentServer === undefined || sentServer === prefix)) {
    return { server: prefix, name: id.slice(slash + 1) };
  }
  return { server: sentServer, name: id };
}

function mismatch(field: string, message: string): ApiError {
  return new ApiError("resource_mismatch", message, field);
}
