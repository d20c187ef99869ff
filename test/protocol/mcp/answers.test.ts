/**
 * The one denial renderer of forward-auth and the PEP library: 401 +
 * WWW-Authenticate resource_metadata for token reasons, 403 + insufficient_scope
 * / insufficient_user_authentication when a step-up would help, a plain 403
 * otherwise, 503 when the PDP cannot be asked, 400 for what is not MCP; the body
 * is a JSON-RPC error (-32003) with the reasons, decision id and step-up, or the
 * same data in the PDP's plain shape when the client sent no JSON-RPC.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isTokenReason, type StepUp } from "../../../src/protocol/challenge.ts";
import {
  denialAnswer,
  refusalAnswer,
  unavailableAnswer,
  type DecidedOperation,
  type McpDecision,
} from "../../../src/protocol/mcp/answers.ts";
import type { McpOperation } from "../../../src/protocol/mcp/operation.ts";
import { McpRefusal } from "../../../src/protocol/mcp/request-reader.ts";

type PdpDecision = McpDecision;
type DecidedElement = DecidedOperation;

/** A request (or, with id undefined, a notification) of `method`. */
function op(id: string | number | undefined, method = "tools/call"): McpOperation {
  return { method, name: method === "tools/call" ? "t" : undefined, arguments: undefined, id };
}

const one = { jsonRpc: true, batch: false };
const many = { jsonRpc: true, batch: true };

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
  return [{ operation: op(id ?? undefined), decision }];
}

describe("deny mapping", () => {
  test("token reasons are 401 with invalid_token when a token was presented", () => {
    const response = denialAnswer(single(deny(["token_expired"])), one, details);
    assert.equal(response?.status, 401);
    assert.deepEqual(response.headers, {
      "www-authenticate": `Bearer error="invalid_token", resource_metadata="${metadataUrl}"`,
    });
  });

  test("a missing token is 401 with resource_metadata only (RFC 9728 discovery)", () => {
    const response = denialAnswer(single(deny(["token_missing"])), one, {
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
    assert.equal(denialAnswer(single(decision), one, details)?.status, 401);
  });

  test("a scope step-up is 403 insufficient_scope with scope, acr_values, max_age", () => {
    const decision = deny(["scope_missing", "acr_insufficient", "auth_too_old"], {
      stepUp: { scopes: ["mcp:admin", "mcp:write"], acrValues: ["mfa"], maxAge: 900 },
    });
    const response = denialAnswer(single(decision), one, details);
    assert.equal(response?.status, 403);
    assert.equal(
      response.headers["www-authenticate"],
      `Bearer error="insufficient_scope", scope="mcp:admin mcp:write", acr_values="mfa", max_age=900, resource_metadata="${metadataUrl}"`,
    );
  });

  test("a step-up without scopes is insufficient_user_authentication", () => {
    const decision = deny(["acr_insufficient"], { stepUp: { acrValues: ["mfa"] } });
    const response = denialAnswer(single(decision), one, details);
    assert.equal(response?.status, 403);
    assert.equal(
      response.headers["www-authenticate"],
      `Bearer error="insufficient_user_authentication", acr_values="mfa", resource_metadata="${metadataUrl}"`,
    );
  });

  test("without a step-up: a plain 403, no WWW-Authenticate", () => {
    const response = denialAnswer(single(deny(["device_untrusted"])), one, details);
    assert.equal(response?.status, 403);
    assert.deepEqual(response.headers, {});
  });

  test("quotes and backslashes cannot break out of a quoted auth-param", () => {
    const decision = deny(["scope_missing"], { stepUp: { scopes: ['a"b\\c'] } });
    const response = denialAnswer(single(decision), one, {
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
    const response = denialAnswer(single(decision, 42), one, details);
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
    const response = denialAnswer(single(deny(["method_unknown"]), null), one, details);
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
    assert.equal(denialAnswer([{ operation: op(1), decision: allow() }], one, details), undefined);
  });

  test("a batch is refused as a whole: one error per request, allowed ones 'not executed'", () => {
    const elements: DecidedElement[] = [
      { operation: op(1), decision: allow("a-1") },
      { operation: op(undefined), decision: allow("a-2") }, // a notification: no answer
      {
        operation: op("two"),
        decision: deny(["scope_missing"], { stepUp: { scopes: ["mcp:admin"] } }),
      },
    ];
    const response = denialAnswer(elements, many, details);
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
      { operation: op(1), decision: deny(["device_untrusted"]) },
      { operation: op(2), decision: deny(["token_expired"]) },
    ];
    assert.equal(denialAnswer(elements, many, details)?.status, 401);
  });

  test("a batch of notifications only gets one error with id null", () => {
    const response = denialAnswer(
      [{ operation: op(undefined), decision: deny(["method_denied"]) }],
      many,
      details,
    );
    assert.deepEqual(
      (response?.body as { id: unknown }[]).map((b) => b.id),
      [null],
    );
  });
});

describe("the plain shape (forward-auth when the client sent no JSON-RPC)", () => {
  const plain = { jsonRpc: false, batch: false };

  test("the same data as the JSON-RPC error, under the PDP's code", () => {
    const decision = deny(["scope_missing"], {
      id: "d-9",
      users: ["Your token lacks a permission."],
      stepUp: { scopes: ["mcp:admin"] },
    });
    const response = denialAnswer(
      [{ operation: op(undefined, "mcp/stream"), decision }],
      plain,
      details,
    );
    assert.equal(response?.status, 403);
    assert.deepEqual(response.body, {
      code: "access_denied",
      message: "Your token lacks a permission.",
      reasons: ["scope_missing"],
      decision_id: "d-9",
      step_up: { scopes: ["mcp:admin"] },
    });
  });

  test("a token reason: unauthenticated", () => {
    const response = denialAnswer(single(deny(["token_missing"])), plain, details);
    assert.equal(response?.status, 401);
    assert.equal((response.body as { code: string }).code, "unauthenticated");
  });
});

describe("which id an error answers", () => {
  test("the client's JSON-RPC response (mcp/response) is never answered by id", () => {
    const response = denialAnswer(
      [{ operation: op("srv-1", "mcp/response"), decision: deny(["method_denied"]) }],
      one,
      details,
    );
    assert.equal((response?.body as { id: unknown }).id, null);
    const batch = denialAnswer(
      [
        { operation: op("srv-1", "mcp/response"), decision: deny(["method_denied"]) },
        { operation: op(2), decision: allow() },
      ],
      many,
      details,
    );
    assert.deepEqual(
      (batch?.body as { id: unknown }[]).map((b) => b.id),
      [2],
    );
  });
});

describe("outages and invalid requests", () => {
  test("PDP unavailable: 503, -32003, pdp_unavailable, addressed to the request", () => {
    const response = unavailableAnswer([3], false);
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
    const body = unavailableAnswer([1, "b"], true).body as { id: unknown }[];
    assert.deepEqual(
      body.map((b) => b.id),
      [1, "b"],
    );
  });

  test("an invalid request: 400, -32600", () => {
    const response = refusalAnswer(new McpRefusal("mcp_invalid", "bad", 5), true);
    assert.equal(response.status, 400);
    assert.deepEqual(response.body, {
      jsonrpc: "2.0",
      id: 5,
      error: { code: -32600, message: "bad", data: { reasons: ["mcp_invalid"] } },
    });
  });

  test("a header mismatch: 400, MCP's HeaderMismatch -32020 (every revision), the other refusals -32600", () => {
    const response = refusalAnswer(new McpRefusal("mcp_header_mismatch", "differs", 6), true);
    assert.equal(response.status, 400);
    assert.deepEqual(response.body, {
      jsonrpc: "2.0",
      id: 6,
      error: { code: -32020, message: "differs", data: { reasons: ["mcp_header_mismatch"] } },
    });
    const codes = Object.fromEntries(
      (
        [
          "mcp_invalid",
          "mcp_batch_rejected",
          "mcp_batch_too_large",
          "mcp_header_mismatch",
          "mcp_http_method_unsupported",
        ] as const
      ).map((code) => [
        code,
        (refusalAnswer(new McpRefusal(code, "x", 1), true).body as { error: { code: number } })
          .error.code,
      ]),
    );
    assert.deepEqual(codes, {
      mcp_invalid: -32600,
      mcp_batch_rejected: -32600,
      mcp_batch_too_large: -32600,
      mcp_header_mismatch: -32020,
      mcp_http_method_unsupported: -32600,
    });
  });

  test("a refusal without an id, answered in JSON-RPC (the PEP): addressed to null", () => {
    const response = refusalAnswer(new McpRefusal("mcp_http_method_unsupported", "no"), true);
    assert.equal((response.body as { id: unknown }).id, null);
  });

  test("a refusal in the plain shape (forward-auth without JSON-RPC): code, reasons, the JSON rule", () => {
    const refusal = new McpRefusal("mcp_invalid", "bad", undefined, {
      code: "duplicate_key",
      field: "/params/name",
    });
    assert.deepEqual(refusalAnswer(refusal, false), {
      status: 400,
      headers: {},
      body: {
        code: "mcp_invalid",
        message: "bad",
        reasons: ["mcp_invalid", "duplicate_key"],
        field: "/params/name",
      },
    });
  });
});
