import { normalizeAddress } from "../net/client-address.ts";
import type { AccessRequest } from "./decision.ts";

/**
 * Builds the policy input from an AuthZEN request: the request itself, plus
 * facts only the PDP may set. It never mutates the request (batch items share
 * their defaults) and adds, never rewrites, caller fields, except the ones the
 * PDP owns:
 *
 * - `context.time` = `{rfc3339, unix_s}`: the PDP's clock, once per request;
 *   a caller-supplied value is replaced (policies never read a clock).
 * - `subject.properties.auth_age_s`: now − `auth_time`, only when `auth_time`
 *   is a number; a caller-supplied value is dropped.
 * - `subject.properties.scopes`: the scopes as an array, from `scopes` or the
 *   space-separated `scope` (OAuth's form).
 * - `resource.properties.server` / `.tool`: split from an id of the form
 *   `<server>/<tool>` (AuthZEN MCP binding) when no server is given.
 * - `context.ip`: an IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) becomes
 *   its IPv4 address, so IPv4 `networks` match it; other values are kept.
 */
export function buildPolicyInput(request: AccessRequest, nowMs: number): Record<string, unknown> {
  const unixSeconds = Math.floor(nowMs / 1000);
  return {
    ...request,
    subject: buildSubject(request, unixSeconds),
    resource: buildResource(request),
    context: {
      ...request.context,
      ...clientAddress(request.context),
      time: { rfc3339: rfc3339Of(unixSeconds), unix_s: unixSeconds },
    },
  };
}

/** The last second formatted: every decision within one second shares its text. */
let formatted = { unixSeconds: Number.NaN, text: "" };

/** RFC 3339 in UTC, whole seconds (`2026-01-02T03:04:05Z`). */
function rfc3339Of(unixSeconds: number): string {
  if (formatted.unixSeconds !== unixSeconds) {
    const text = new Date(unixSeconds * 1000).toISOString().replace(".000Z", "Z");
    formatted = { unixSeconds, text };
  }
  return formatted.text;
}

function buildSubject(request: AccessRequest, unixSeconds: number): AccessRequest["subject"] {
  const { auth_age_s: _ignored, ...properties } = request.subject.properties ?? {};
  const scopes = scopesOf(properties);
  if (scopes !== undefined) properties.scopes = scopes;
  const authTime = properties.auth_time;
  if (typeof authTime === "number" && Number.isFinite(authTime)) {
    properties.auth_age_s = unixSeconds - Math.floor(authTime);
  }
  return { ...request.subject, properties };
}

function scopesOf(properties: Record<string, unknown>): string[] | undefined {
  const { scopes, scope } = properties;
  if (Array.isArray(scopes)) return scopes.filter((s): s is string => typeof s === "string");
  if (typeof scope === "string") return scope.split(" ").filter((s) => s.length > 0);
  return undefined;
}

function buildResource(request: AccessRequest): AccessRequest["resource"] {
  const resource = request.resource;
  const slash = resource.id.indexOf("/");
  if (typeof resource.properties?.server === "string" || slash <= 0) return resource;
  return {
    ...resource,
    properties: {
      ...resource.properties,
      server: resource.id.slice(0, slash),
      tool: resource.id.slice(slash + 1),
    },
  };
}

function clientAddress(context: AccessRequest["context"]): { ip?: string } {
  const ip = context?.ip;
  return typeof ip === "string" ? { ip: normalizeAddress(ip) } : {};
}
