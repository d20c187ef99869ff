/**
 * The AuthZEN request schemas in process: what is accepted, which one field a
 * refusal names (the first a depth-first reader meets, as the wire has always
 * answered), and that the value passed on is the one sent, never a copy.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  parseAccessRequest,
  parseEvaluationsRequest,
  parseSearchRequest,
} from "../../src/api/authzen-schemas.ts";
import { ApiError } from "../../src/errors.ts";

type Json = Record<string, unknown>;

function request(overrides: Json = {}): Json {
  return {
    subject: { type: "user", id: "alice", properties: { scopes: ["mcp:read"] } },
    action: { name: "tools/call" },
    resource: { type: "tool", id: "files/read_file" },
    ...overrides,
  };
}

/** The refusal of `parse(value)`: its code, field and message. */
function refusal(parse: () => unknown): { code: string; field?: string; message: string } {
  try {
    parse();
  } catch (error) {
    assert.ok(error instanceof ApiError, String(error));
    const { code, field, message } = error.toBody();
    return { code, message, ...(field === undefined ? {} : { field }) };
  }
  assert.fail("expected a refusal");
}

describe("what reaches the policy", () => {
  test("the value sent, unknown keys and their order included (zod's copy is not used)", () => {
    const sent = request({
      zeta: 1,
      context: { custom: { nested: true }, ip: "10.0.0.1", alpha: [1] },
    });
    (sent.subject as Json).extra = "kept";
    const accepted = parseAccessRequest(sent);
    assert.equal(accepted.subject, sent.subject);
    assert.equal(accepted.context, sent.context);
    assert.deepEqual(Object.keys(accepted.context ?? {}), ["custom", "ip", "alpha"]);
    assert.equal((accepted as unknown as Json).zeta, 1);
    assert.equal((accepted.subject as unknown as Json).extra, "kept");
  });

  test("a batch envelope and a search request come back as the very objects sent", () => {
    const envelope = { ...request(), evaluations: [{ resource: { type: "tool", id: "x" } }] };
    assert.equal(parseEvaluationsRequest(envelope), envelope);
    const search = { ...request({ resource: { type: "tool" } }), page: { limit: 2 } };
    assert.equal(parseSearchRequest("resource", search), search);
  });
});

describe("acceptance", () => {
  test("lengths count code points: 1024 emoji are a valid id, 1025 are not", () => {
    const id = (n: number): Json => request({ subject: { type: "user", id: "😀".repeat(n) } });
    assert.equal(parseAccessRequest(id(1024)).subject.id.length, 2048);
    assert.deepEqual(
      refusal(() => parseAccessRequest(id(1025))),
      {
        code: "invalid_request",
        field: "/subject/id",
        message: "/subject/id must NOT have more than 1024 characters",
      },
    );
  });

  test("a null token says no token was presented; a token must otherwise be a string", () => {
    const withToken = (token: unknown): Json =>
      request({ subject: { type: "user", properties: { token } } });
    assert.equal(parseAccessRequest(withToken(null)).subject.properties?.token, null);
    assert.deepEqual(
      refusal(() => parseAccessRequest(withToken(["t"]))),
      {
        code: "invalid_request",
        field: "/subject/properties/token",
        message: "/subject/properties/token must be string,null",
      },
    );
    assert.equal(
      refusal(() => parseAccessRequest(withToken(""))).field,
      "/subject/properties/token",
    );
  });

  test("page.limit is any whole number ≥ 1 (the maximum is the search API's to name)", () => {
    const search = (limit: unknown): Json => ({
      ...request({ resource: { type: "tool" } }),
      page: { limit },
    });
    assert.ok(parseSearchRequest("resource", search(2 ** 60)));
    for (const [limit, message] of [
      [0, "must be >= 1"],
      [1.5, "must be integer"],
      ["2", "must be integer"],
    ] as const) {
      assert.deepEqual(
        refusal(() => parseSearchRequest("resource", search(limit))),
        {
          code: "invalid_request",
          field: "/page/limit",
          message: `/page/limit ${message}`,
        },
      );
    }
  });

  test("an unknown evaluations_semantic names the allowed ones", () => {
    const envelope = { options: { evaluations_semantic: "first" } };
    assert.deepEqual(
      refusal(() => parseEvaluationsRequest(envelope)),
      {
        code: "invalid_request",
        field: "/options/evaluations_semantic",
        message:
          "/options/evaluations_semantic must be one of execute_all, deny_on_first_deny, permit_on_first_permit",
      },
    );
  });

  test("not an object at all: the body is named, with an empty field", () => {
    for (const body of [null, 1, "s", [], true]) {
      assert.deepEqual(
        refusal(() => parseAccessRequest(body)),
        {
          code: "invalid_request",
          field: "",
          message: "body must be object",
        },
      );
    }
  });
});

describe("the one field a refusal names", () => {
  test("a missing key comes before anything wrong inside a sibling", () => {
    const sent = request({ subject: { type: 1 }, action: undefined });
    delete sent.action;
    assert.deepEqual(
      refusal(() => parseAccessRequest(sent)),
      {
        code: "invalid_request",
        field: "/action",
        message: "/action is required",
      },
    );
  });

  test("between siblings, the schema's order: subject before action before context", () => {
    const sent = request({
      subject: { type: "user", id: "a", properties: { auth_time: "x" } },
      action: [],
      context: 5,
    });
    assert.equal(refusal(() => parseAccessRequest(sent)).field, "/subject/properties/auth_time");
  });

  test("a list that is too long is named before a wrong item in it", () => {
    const scopes = [...Array<string>(256).fill("s"), 3];
    const sent = request({ subject: { type: "user", id: "a", properties: { scopes } } });
    assert.deepEqual(
      refusal(() => parseAccessRequest(sent)),
      {
        code: "invalid_request",
        field: "/subject/properties/scopes",
        message: "/subject/properties/scopes must NOT have more than 256 items",
      },
    );
    const short = request({
      subject: { type: "user", id: "a", properties: { scopes: ["s", "s", 3] } },
    });
    assert.equal(refusal(() => parseAccessRequest(short)).field, "/subject/properties/scopes/2");
  });

  test("a batch item's field is under its pointer", () => {
    const item = request({ action: { name: "" } });
    assert.deepEqual(
      refusal(() => parseAccessRequest(item, "/evaluations/2")),
      {
        code: "invalid_request",
        field: "/evaluations/2/action/name",
        message: "/evaluations/2/action/name must NOT have fewer than 1 characters",
      },
    );
  });

  test("no subject id and no token: /subject/id, once the shape is right", () => {
    const sent = request({ subject: { type: "user" } });
    assert.equal(refusal(() => parseAccessRequest(sent)).field, "/subject/id");
    assert.equal(refusal(() => parseSearchRequest("action", sent)).field, "/subject/id");
    assert.ok(parseSearchRequest("subject", { ...sent, subject: { type: "user" } }));
  });
});
