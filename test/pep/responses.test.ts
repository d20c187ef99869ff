/**
 * How the PEP maps decisions to HTTP: 401 + WWW-Authenticate resource_metadata
 * for token reasons, 403 + insufficient_scope / insufficient_user_authentication
 * when a step-up would help, a plain 403 otherwise, 503 when the PDP cannot be
 * asked; the body is a JSON-RPC error (-32003) with the reasons and decision id.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { PdpDecision, StepUp } from "../../src/pep/pdp-client.js";
import {
  denialResponse,
  invalidRequestResponse,
  isTokenReason,
  unavailableResponse,
  type DecidedElement,
} from "../../src/pep/responses.js";

const metadataUrl = "https://mcp.example.test/.well-known/oauth-protected-resource/files";
const details = { resourceMetadataUrl: metadataUrl, tokenPresented: true };

function deny(
  codes: string[],
  options: { stepUp?: Partial<StepUp>; id?: string; users?: string[] } = {},
): PdpDecision {
  return {
    allow: false,
    id: options.id ?? "d-1",
    reasons: codes.map((code, index) => ({ code, user: options.users?.[index] })),
    stepUp:
      options.stepUp === undefined
        ? undefined
        : { scopes: [], acrValues: [], maxAge: undefined, ...options.stepUp },
  };
}

const allow = (id = "a-1"): PdpDecision => ({ allow: true, id, reasons: [], stepUp: undefined });

function single(decision: PdpDecision, id: number | null = 1): DecidedElement[] {
  return [{ id: id ?? undefined, decision }];
}

describe("deny mapping", () => {
  test("token reasons are 401 with invalid_token when a token was presented", () => {
    const response = denialResponse(single(deny(["token_expired"])), false, details);
    assert.equal(response?.status, 401);
    assert.deepEqual(response.headers, {
      "www-authenticate": `Bearer error="invalid_token", resource_metadata="${metadataUrl}"`,
    });
  });

  test("a missing token is 401 with resource_metadata only (RFC 9728 discovery)", () => {
    const response = denialResponse(single(deny(["token_missing"])), false, {
      ...details,
      tokenPresented: false,
    });
    assert.equal(response?.status, 401);
    assert.equal(response.headers["www-authenticate"], `Bearer resource_metadata="${metadataUrl}"`);
  });

  test("which codes are token reasons", () => {
    for (const code of ["token_missing", "token_wrong_audience", "jwks_unavailable"]) {
      assert.equal(isTokenReason(code), true, code);
    }
    for (const code of ["scope_missing", "auth_too_old", "tokenless", "device_untrusted"]) {
      assert.equal(isTokenReason(code), false, code);
    }
  });

  test("a token reason wins over a step-up in the same decision", () => {
    const decision = deny(["jwks_unavailable", "scope_missing"], {
      stepUp: { scopes: ["mcp:admin"] },
    });
    assert.equal(denialResponse(single(decision), false, details)?.status, 401);
  });

  test("a scope step-up is 403 insufficient_scope with scope, acr_values, max_age", () => {
    const decision = deny(["scope_missing", "acr_insufficient", "auth_too_old"], {
      stepUp: { scopes: ["mcp:admin", "mcp:write"], acrValues: ["mfa"], maxAge: 900 },
    });
    const response = denialResponse(single(decision), false, details);
    assert.equal(response?.status, 403);
    assert.equal(
      response.headers["www-authenticate"],
      `Bearer error="insufficient_scope", scope="mcp:admin mcp:write", acr_values="mfa", max_age=900, resource_metadata="${metadataUrl}"`,
    );
  });

  test("a step-up without scopes is insufficient_user_authentication", () => {
    const decision = deny(["acr_insufficient"], { stepUp: { acrValues: ["mfa"] } });
    const response = denialResponse(single(decision), false, details);
    assert.equal(response?.status, 403);
    assert.equal(
      response.headers["www-authenticate"],
      `Bearer error="insufficient_user_authentication", acr_values="mfa", resource_metadata="${metadataUrl}"`,
    );
  });

  test("without a step-up: a plain 403, no WWW-Authenticate", () => {
    const response = denialResponse(single(deny(["device_untrusted"])), false, details);
    assert.equal(response?.status, 403);
    assert.deepEqual(response.headers, {});
  });

  test("quotes and backslashes cannot break out of a quoted auth-param", () => {
    const decision = deny(["scope_missing"], { stepUp: { scopes: ['a"b\\c'] } });
    const response = denialResponse(single(decision), false, {
      ...details,
      resourceMetadataUrl: 'https://x.test/"evil',
    });
    assert.equal(
      response?.headers["www-authenticate"],
      `Bearer error="insufficient_scope", scope="abc", resource_metadata="https://x.test/evil"`,
    );
  });

  test("the body is a JSON-RPC error: -32003, user messages, reason codes, decision id, step-up", () => {
    const decision = deny(["acr_insufficient", "scope_missing", "scope_missing"], {
      id: "5d0e",
      users: [
        "Sign in with MFA.",
        "Your token lacks a permission.",
        "Your token lacks a permission.",
      ],
      stepUp: { scopes: ["mcp:admin"], acrValues: ["mfa"] },
    });
    const response = denialResponse(single(decision, 42), false, details);
    assert.deepEqual(response?.body, {
      jsonrpc: "2.0",
      id: 42,
      error: {
        code: -32003,
        message: "Sign in with MFA. Your token lacks a permission.",
        data: {
          reasons: ["acr_insufficient", "scope_missing", "scope_missing"],
          decision_id: "5d0e",
          step_up: { scopes: ["mcp:admin"], acr_values: ["mfa"] },
        },
      },
    });
  });

  test("no user message: 'Access denied.'; a notification (no id) is answered with id null", () => {
    const response = denialResponse(single(deny(["method_unknown"]), null), false, details);
    assert.deepEqual(response?.body, {
      jsonrpc: "2.0",
      id: null,
      error: {
        code: -32003,
        message: "Access denied.",
        data: { reasons: ["method_unknown"], decision_id: "d-1" },
      },
    });
  });

  test("everything allowed: no denial", () => {
    assert.equal(denialResponse([{ id: 1, decision: allow() }], false, details), undefined);
  });

  test("a batch is refused as a whole: one error per request, allowed ones 'not executed'", () => {
    const elements: DecidedElement[] = [
      { id: 1, decision: allow("a-1") },
      { id: undefined, decision: allow("a-2") }, // a notification: no answer
      { id: "two", decision: deny(["scope_missing"], { stepUp: { scopes: ["mcp:admin"] } }) },
    ];
    const response = denialResponse(elements, true, details);
    assert.equal(response?.status, 403);
    assert.match(response.headers["www-authenticate"] ?? "", /insufficient_scope/);
    const body = response.body as { id: unknown; error: { data: { reasons: string[] } } }[];
    assert.deepEqual(
      body.map((b) => [b.id, b.error.data.reasons]),
      [
        [1, ["batch_denied"]],
        ["two", ["scope_missing"]],
      ],
    );
  });

  test("in a batch, a token refusal chooses the status over an earlier plain refusal", () => {
    const elements: DecidedElement[] = [
      { id: 1, decision: deny(["device_untrusted"]) },
      { id: 2, decision: deny(["token_expired"]) },
    ];
    assert.equal(denialResponse(elements, true, details)?.status, 401);
  });

  test("a batch of notifications only gets one error with id null", () => {
    const response = denialResponse(
      [{ id: undefined, decision: deny(["method_denied"]) }],
      true,
      details,
    );
    assert.deepEqual(
      (response?.body as { id: unknown }[]).map((b) => b.id),
      [null],
    );
  });
});

describe("outages and invalid requests", () => {
  test("PDP unavailable: 503, -32003, pdp_unavailable, addressed to the request", () => {
    const response = unavailableResponse([3], false);
    assert.equal(response.status, 503);
    assert.deepEqual(response.body, {
      jsonrpc: "2.0",
      id: 3,
      error: {
        code: -32003,
        message: "Authorization is temporarily unavailable; the request was not executed.",
        data: { reasons: ["pdp_unavailable"] },
      },
    });
  });

  test("PDP unavailable for a batch: one error per request", () => {
    const body = unavailableResponse([1, "b"], true).body as { id: unknown }[];
    assert.deepEqual(
      body.map((b) => b.id),
      [1, "b"],
    );
  });

  test("an invalid request: 400, -32600", () => {
    const response = invalidRequestResponse("bad", 5);
    assert.equal(response.status, 400);
    assert.deepEqual(response.body, {
      jsonrpc: "2.0",
      id: 5,
      error: { code: -32600, message: "bad", data: { reasons: ["mcp_invalid"] } },
    });
  });
});
