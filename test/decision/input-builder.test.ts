import assert from "node:assert/strict";
import { test } from "node:test";
import type { AccessRequest } from "../../src/decision/decision.ts";
import { buildPolicyInput } from "../../src/decision/input-builder.ts";

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

test("an IPv4-mapped context.ip reaches the policy as its IPv4 address", () => {
  for (const ip of ["::ffff:10.1.2.3", "::ffff:a01:203", "0:0:0:0:0:ffff:a01:203"]) {
    const original = request({ context: { ip, device: { trust: "managed" } } });
    const input = buildPolicyInput(original, nowMs) as { context: Record<string, unknown> };
    assert.equal(input.context.ip, "10.1.2.3", ip);
    assert.deepEqual(input.context.device, { trust: "managed" });
    assert.equal(original.context?.ip, ip, "the request keeps what the caller sent");
  }
});

test("any other context.ip is kept as sent, and none is added", () => {
  for (const ip of ["10.1.2.3", "2001:db8::1", "::ffff:0:10.1.2.3", "not an address", 42, null]) {
    const input = buildPolicyInput(request({ context: { ip } }), nowMs) as {
      context: Record<string, unknown>;
    };
    assert.equal(input.context.ip, ip, String(ip));
  }
  const without = buildPolicyInput(request({ context: {} }), nowMs) as {
    context: Record<string, unknown>;
  };
  assert.equal("ip" in without.context, false);
});
