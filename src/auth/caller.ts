/**
 * The decision API groups a caller may be allowed to use (its default when
 * none are listed). `opa_data` (the OPA Data API) also needs `assertSubject`:
 * its input reaches the policy unverified.
 */
export const apiPermissions = ["authzen", "forward_auth", "opa_data"] as const;
/** A decision API group, or "ops": /health, /ready, /metrics when they are not open. */
export type ApiPermission = (typeof apiPermissions)[number] | "ops";

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
