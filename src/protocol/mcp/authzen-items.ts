import type { McpOperation } from "./operation.ts";

/** MCP `ToolAnnotations` as a server declares them; the PDP treats them as untrusted hints. */
export type ToolAnnotations = Record<string, unknown>;

/**
 * An AuthZEN resource of one MCP server, typed as the AuthZEN MCP binding
 * (COAZ-MCP) types it: a tool, a resource (URI), a prompt, a task, or the
 * server itself.
 */
// A type, not an interface: it must fit the PEP's plain-record AuthZEN entities.
export type McpResource = {
  type: "tool" | "resource" | "prompt" | "task" | "mcp_server";
  id: string;
  properties: Record<string, unknown>;
};

/** What one MCP operation asks the PDP about: action = the MCP method, resource = its target. */
export type McpAuthzenItem = {
  action: { name: string };
  resource: McpResource;
};

/** How the operations of one request become AuthZEN items. */
export interface McpItemOptions {
  /** The MCP server's name in the servers registry (the `<server>` of `<server>/<tool>`). */
  server: string;
  /**
   * Larger `tools/call` arguments (as JSON text) are not passed to the policy:
   * `arguments_omitted: true` says they existed. 0 omits every argument.
   */
  maxArgumentBytes: number;
  /** The annotations the server declares for a tool (the PEP library knows them; forward-auth does not). */
  annotationsOf?: ((tool: string) => ToolAnnotations | undefined) | undefined;
}

/**
 * The AuthZEN item of one MCP operation, the one mapping forward-auth and the
 * PEP library share. A `tools/call` (or `mcp/opaque`) whose tool is not
 * visible, which the reader allows only without a visible body, is a tool
 * with `hidden: true` and an empty id: the policy assumes the worst. A
 * resource, prompt or task that is not visible has the id "" and a null
 * URI/prompt/task. Every other method (the list methods, initialize,
 * server/discover, subscriptions/listen, tasks/list …) is about the server
 * itself: `mcp_server`, whose id is the registry name (the binding's other
 * spelling, the server's resource URI, is accepted on the AuthZEN API).
 */
export function authzenItemOf(operation: McpOperation, options: McpItemOptions): McpAuthzenItem {
  return { action: { name: operation.method }, resource: resourceOf(operation, options) };
}

function resourceOf(operation: McpOperation, options: McpItemOptions): McpResource {
  const { server } = options;
  const name = operation.name;
  switch (operation.method) {
    case "tools/call":
    case "mcp/opaque": {
      if (name === undefined) {
        // The tool is not visible (headers-only proxy, no Mcp-Name): the policy assumes the worst.
        return { type: "tool", id: "", properties: { server, hidden: true } };
      }
      const resource = toolResource(server, name, options.annotationsOf?.(name));
      if (operation.arguments !== undefined) {
        const size = JSON.stringify(operation.arguments).length;
        if (size <= options.maxArgumentBytes) resource.properties.arguments = operation.arguments;
        else resource.properties.arguments_omitted = true;
      }
      return resource;
    }
    case "resources/read":
    case "resources/subscribe":
    case "resources/unsubscribe":
      return { type: "resource", id: name ?? "", properties: { server, uri: name ?? null } };
    case "prompts/get":
      return { type: "prompt", id: name ?? "", properties: { server, prompt: name ?? null } };
    // The binding's task resource: tasks/get, tasks/result, tasks/update, tasks/cancel name
    // one task (tasks/list, naming none, is about the server).
    case "tasks/get":
    case "tasks/result":
    case "tasks/update":
    case "tasks/cancel":
      return { type: "task", id: name ?? "", properties: { server, task: name ?? null } };
    default:
      return { type: "mcp_server", id: server, properties: { server } };
  }
}

/**
 * The AuthZEN resource of a tool of `server`, with its annotations when they
 * are a plain object (a `tools/call` and the `tools/list` entry of the same
 * tool are judged alike).
 */
export function toolResource(server: string, name: string, annotations: unknown): McpResource {
  const properties: Record<string, unknown> = { server, tool: name };
  if (isPlainObject(annotations)) properties.annotations = annotations;
  return { type: "tool", id: name, properties };
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
