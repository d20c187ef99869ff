/** The typical requests the benchmark sends, to the PDP and (as policy input) to OPA. */
import type { AccessRequest } from "../src/decision/decision.js";
import { buildPolicyInput } from "../src/decision/input-builder.js";

export interface Workload {
  /** A short label for tables. */
  name: string;
  /** What the policy should answer; a sanity check of the workload, not of speed. */
  expectAllow: boolean;
  request: AccessRequest;
}

/**
 * A tools/call from a managed device on 10.1.2.3 by a user holding mcp:read
 * and mcp:write who signed in five minutes before `nowMs`: the catalogued
 * write tool is allowed; the destructive one is denied (scope, device, acr and,
 * outside 07–19 UTC, hours).
 */
export function workloads(nowMs: number): { allowed: Workload; denied: Workload } {
  const call = (tool: string): AccessRequest => ({
    subject: {
      type: "user",
      id: "alice@example.com",
      properties: {
        scope: "openid mcp:read mcp:write",
        acr: "pwd",
        auth_time: Math.floor(nowMs / 1000) - 300,
        client_id: "mcp-gateway",
      },
    },
    action: { name: "tools/call" },
    resource: { type: "tool", id: tool },
    context: {
      ip: "10.1.2.3",
      device: { id: "laptop-42", trust: "managed" },
      session: { id: "s-1" },
    },
  });
  return {
    allowed: {
      name: "allowed write (files/write_file)",
      expectAllow: true,
      request: call("files/write_file"),
    },
    denied: {
      name: "denied destructive (files/delete_file)",
      expectAllow: false,
      request: call("files/delete_file"),
    },
  };
}

/**
 * The body OPA's data API expects: the document the PDP itself evaluates
 * (context.time, auth_age_s, scopes, resource server/tool already present).
 */
export function opaBody(request: AccessRequest, nowMs: number): string {
  return JSON.stringify({ input: buildPolicyInput(request, nowMs) });
}
