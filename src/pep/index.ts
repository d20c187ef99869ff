/**
 * @mcp-pdp/pep: enforcement of mcp-pdp decisions inside an MCP server built on
 * the official TypeScript SDK, 1.x or v2 (express + Streamable HTTP). A client
 * of the PDP's AuthZEN API; it imports neither express nor the SDK at run time.
 */
export { createMcpAuthorization, type McpAuthorizationMiddleware } from "./middleware.ts";
export type { McpAuthorizationOptions, ToolAnnotations } from "./options.ts";
export { jsonRpcAccessDenied } from "../protocol/mcp/jsonrpc.ts";
