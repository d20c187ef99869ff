/** The typical requests the benchmark sends, to the PDP and (as policy input) to OPA. */
import type { Caller } from "../src/auth/caller.ts";
import { SubjectResolver } from "../src/auth/subject-resolver.ts";
import type { AccessRequest } from "../src/decision/decision.ts";
import { buildPolicyInput } from "../src/decision/input-builder.ts";
import { ServerRegistry } from "../src/auth/servers.ts";

export interface Workload {
  /** A short label for tables. */
  name: string;
  /** What the policy should answer; a sanity check of the workload, not of speed. */
  expectAllow: boolean;
  /** What is sent to the PDP over HTTP. */
  request: AccessRequest;
  /**
   * `request` after subject resolution, as the PDP's decision engine gets it:
   * the benchmark's PDP has no callers configured, so every caller may assert
   * the subject (trusted-gateway mode) and it is marked authenticated.
   */
  resolved: AccessRequest;
}

/** The caller the PDP assumes when no callers are configured (PDP_CONFIG without `callers`). */
const assertingCaller: Caller = {
  name: "bench",
  permissions: new Set(["authzen"]),
  assertSubject: true,
};

/**
 * A tools/call from a managed device on 10.1.2.3 by a user holding mcp:read
 * and mcp:write who signed in five minutes before `nowMs`: the catalogued
 * write tool is allowed; the destructive one is denied (scope, device, acr and,
 * outside 07–19 UTC, hours).
 */
export async function workloads(nowMs: number): Promise<{ allowed: Workload; denied: Workload }> {
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
  const subjects = new SubjectResolver(undefined, new ServerRegistry([]));
  const workload = async (name: string, expectAllow: boolean, tool: string): Promise<Workload> => {
    const request = call(tool);
    const resolved = await subjects.resolve(request, assertingCaller, nowMs);
    return { name, expectAllow, request, resolved };
  };
  return {
    allowed: await workload("allowed write (files/write_file)", true, "files/write_file"),
    denied: await workload("denied destructive (files/delete_file)", false, "files/delete_file"),
  };
}

/**
 * The body OPA's data API expects: the document the PDP itself evaluates
 * (subject resolved, context.time, auth_age_s, scopes, resource server/tool
 * already present).
 */
export function opaBody(workload: Workload, nowMs: number): string {
  return JSON.stringify({ input: buildPolicyInput(workload.resolved, nowMs) });
}
