import assert from "node:assert/strict";
import { test } from "node:test";
import type { AccessRequest } from "../../src/decision/decision.js";
import { buildPolicyInput } from "../../src/decision/input-builder.js";

const nowMs = Date.UTC(2026, 10, 26, 10, 0, 0, 750);
const nowS = Math.floor(nowMs / 1000);

function request(overrides: Partial<AccessRequest> = {}): AccessRequest {
  return {
    subject: { type: "user", id: "alice", properties: { scope: "mcp:read  mcp:write" } },
    action: { name: "tools/call" },
    resource: { type: "tool", id: "files/read_file" },
    ...overrides,
  };
}

test("context.time is the PDP's clock, replacing a caller-supplied value", () => {
  const input = buildPolicyInput(
    request({ context: { time: "1999-01-01T00:00:00Z", ip: "10.0.0.1" } }),
    nowMs,
  );
  assert.deepEqual(input.context, {
    ip: "10.0.0.1",
    time: { rfc3339: "2026-11-26T10:00:00Z", unix_s: nowS },
  });
});

test("scopes come from the space-separated scope claim, or from a scopes array", () => {
  const fromScope = buildPolicyInput(request(), nowMs) as {
    subject: { properties: { scopes: string[] } };
  };
  assert.deepEqual(fromScope.subject.properties.scopes, ["mcp:read", "mcp:write"]);
  const fromArray = buildPolicyInput(
    request({
      subject: { type: "user", id: "a", properties: { scopes: ["x", 3, "y"], scope: "z" } },
    }),
    nowMs,
  ) as { subject: { properties: { scopes: string[] } } };
  assert.deepEqual(fromArray.subject.properties.scopes, ["x", "y"]);
});

test("auth_age_s is derived from auth_time; a caller's own value is dropped", () => {
  const withTime = buildPolicyInput(
    request({
      subject: { type: "user", id: "a", properties: { auth_time: nowS - 600, auth_age_s: 1 } },
    }),
    nowMs,
  ) as { subject: { properties: Record<string, unknown> } };
  assert.equal(withTime.subject.properties.auth_age_s, 600);
  const withoutTime = buildPolicyInput(
    request({ subject: { type: "user", id: "a", properties: { auth_age_s: 1 } } }),
    nowMs,
  ) as { subject: { properties: Record<string, unknown> } };
  assert.equal("auth_age_s" in withoutTime.subject.properties, false);
});

test("a <server>/<tool> id is split; an explicit server is kept as sent", () => {
  const split = buildPolicyInput(request(), nowMs) as {
    resource: { properties: Record<string, unknown> };
  };
  assert.deepEqual(split.resource.properties, { server: "files", tool: "read_file" });
  const explicit = request({
    resource: { type: "tool", id: "a/b", properties: { server: "git", tool: "a/b" } },
  });
  assert.deepEqual(
    (buildPolicyInput(explicit, nowMs) as { resource: unknown }).resource,
    explicit.resource,
  );
  const plain = request({ resource: { type: "tool", id: "read_file" } });
  assert.deepEqual(
    (buildPolicyInput(plain, nowMs) as { resource: unknown }).resource,
    plain.resource,
  );
});

test("the request is never mutated (batch items share their defaults)", () => {
  const original = request({ context: { device: { trust: "managed" } } });
  const snapshot = structuredClone(original);
  buildPolicyInput(original, nowMs);
  assert.deepEqual(original, snapshot);
});
