import type { ApiPermission } from "../config/index.ts";

/** Who is calling the PDP's own API (a PEP, a gateway, an MCP server). */
export interface Caller {
  name: string;
  permissions: ReadonlySet<ApiPermission>;
  /**
   * May assert pre-verified subject properties instead of sending a token
   * (the trusted-gateway mode).
   */
  assertSubject: boolean;
}
