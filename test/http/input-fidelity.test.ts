/**
 * Inputs the compiled policy and OPA would read differently get a clear 400
 * on the PDP's own APIs, over real HTTP:
 * a lone UTF-16 surrogate escape anywhere in a string or key is
 * `invalid_unicode`, a number literal a double cannot hold exactly is
 * `number_unrepresentable`, each with the JSON pointer of the culprit. On
 * forward-auth the body is a relayed JSON-RPC message: the refusal is
 * JSON-RPC's invalid request (reason `mcp_invalid`) naming the problem.
 * Before, AuthZEN answered an `evaluation_error` deny for the first and
 * evaluated the second as a double.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { startForwardAuthPdp } from "../support/forward-auth-pdp.ts";
import { scratchDir } from "../support/opa.ts";
import { postJson, startPdp, type RunningPdp } from "../support/pdp.ts";

type Json = Record<string, unknown>;

const operatorData = fileURLToPath(new URL("../../examples/operator-data.yaml", import.meta.url));
const nowMs = Date.UTC(2026, 2, 10, 12, 0, 0);
const nowS = nowMs / 1000;
const clock = () => nowMs;

const scratch = scratchDir();
const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const close of closers.reverse()) await close();
  scratch.remove();
});

/** A valid AuthZEN evaluation as JSON text, with `"@@"` left for the test to splice into. */
const evaluation = JSON.stringify({
  subject: {
    type: "user",
    id: "alice",
    properties: { scope: "mcp:read", auth_time: nowS - 300 },
  },
  action: { name: "tools/call" },
  resource: { type: "tool", id: "files/read_file" },
  context: { device: { trust: "managed" }, extra: "@@" },
});

/** The evaluation with `"@@"` replaced by a raw JSON fragment. */
function splice(fragment: string): string {
  return evaluation.replace('"@@"', fragment);
}

describe("AuthZEN", () => {
  let pdp: RunningPdp | undefined;
  before(async () => {
    pdp = await startPdp({ env: { PDP_DATA: operatorData }, clock });
    closers.push(() => pdp?.close() ?? Promise.resolve());
  });

  /** Posts raw JSON text to the PDP and returns the answer. */
  async function post(path: string, text: string): Promise<{ status: number; body: Json }> {
    assert.ok(pdp);
    const answer = await postJson(`${pdp.url}${path}`, text);
    return { status: answer.status, body: answer.body as Json };
  }

  test("the unspliced request is a plain allow (the baseline the refusals below depart from)", async () => {
    const answer = await post("/access/v1/evaluation", splice('"fine"'));
    assert.equal(answer.status, 200);
    assert.equal(answer.body.decision, true, JSON.stringify(answer.body));
  });

  for (const [name, text, field] of [
    ["in a context string", splice('"x\\ud800"'), "/context/extra"],
    ["in a context key", splice('{"\\udc00":1}'), "/context/extra/\ufffd"],
    ["in an array", splice('["ok", "\\ud800\\u0041"]'), "/context/extra/1"],
    ["in the subject id", evaluation.replace('"alice"', '"ali\\udbffce"'), "/subject/id"],
    [
      "in the tool name",
      evaluation.replace('"files/read_file"', '"files/read_\\udfff"'),
      "/resource/id",
    ],
  ] as const) {
    test(`a lone surrogate ${name}: 400 invalid_unicode at ${field}`, async () => {
      const answer = await post("/access/v1/evaluation", text);
      assert.equal(answer.status, 400, JSON.stringify(answer.body));
      assert.equal(answer.body.code, "invalid_unicode");
      assert.equal(answer.body.field, field);
    });
  }

  test("a surrogate pair is accepted", async () => {
    const answer = await post("/access/v1/evaluation", splice('"\\ud83d\\ude00"'));
    assert.equal(answer.status, 200);
    assert.equal(answer.body.decision, true);
  });

  for (const [name, text, field] of [
    ["with more digits than a double holds", splice("900.00000000000000001"), "/context/extra"],
    ["that is a big integer past 2^53", splice("12345678901234567890"), "/context/extra"],
    ["out of range", splice("[1, 1e400]"), "/context/extra/1"],
    ["that underflows to 0", splice('{"n": 4e-330}'), "/context/extra/n"],
    [
      "in an auth_time a double cannot hold",
      evaluation.replace(String(nowS - 300), `${nowS - 300}.00000000000000001`),
      "/subject/properties/auth_time",
    ],
  ] as const) {
    test(`a number ${name}: 400 number_unrepresentable at ${field}`, async () => {
      assert.notEqual(text, evaluation);
      const answer = await post("/access/v1/evaluation", text);
      assert.equal(answer.status, 400, JSON.stringify(answer.body));
      assert.equal(answer.body.code, "number_unrepresentable");
      assert.equal(answer.body.field, field);
    });
  }

  test("numbers that are exactly their double are accepted", async () => {
    for (const literal of ["0.1", "1e3", "9.0e2", "900.0", "-0", "1.5e-7", "5e-324"]) {
      const answer = await post("/access/v1/evaluation", splice(literal));
      assert.equal(answer.status, 200, `${literal}: ${JSON.stringify(answer.body)}`);
      assert.equal(answer.body.decision, true, literal);
    }
  });

  test("in a batch, the pointer names the item", async () => {
    const batch = `{"subject":{"type":"user","id":"alice","properties":{"scope":"mcp:read"}},"action":{"name":"tools/call"},"evaluations":[{"resource":{"type":"tool","id":"files/read_file"}},{"resource":{"type":"tool","id":"files/read_file"},"context":{"n":1e400}},{"resource":{"type":"tool","id":"\\ud800"}}]}`;
    const answer = await post("/access/v1/evaluations", batch);
    assert.equal(answer.status, 400, JSON.stringify(answer.body));
    // Surrogates are checked before numbers: the whole body is refused for the first problem.
    assert.equal(answer.body.code, "invalid_unicode");
    assert.equal(answer.body.field, "/evaluations/2/resource/id");
    const numbersOnly = batch.replace('"\\ud800"', '"files/read_file"');
    const second = await post("/access/v1/evaluations", numbersOnly);
    assert.equal(second.body.code, "number_unrepresentable");
    assert.equal(second.body.field, "/evaluations/1/context/n");
  });
});

describe("forward-auth: the relayed JSON-RPC body", () => {
  let pdp: RunningPdp;
  let token = "";

  before(async () => {
    ({ pdp, token } = await startForwardAuthPdp({
      dir: scratch.dir,
      operatorData,
      clock,
      sub: "alice",
      scope: "mcp:read",
      closers,
    }));
  });

  /** A read_file call relayed with its body (Envoy, Traefik with forwardBody), `"@@"` spliced. */
  async function relay(fragment: string): Promise<{ status: number; body: Json }> {
    const body = JSON.stringify({
      jsonrpc: "2.0",
      id: 5,
      method: "tools/call",
      params: { name: "read_file", arguments: { path: "@@" } },
    }).replace('"@@"', fragment);
    const response = await fetch(`${pdp.url}/forward-auth/files/mcp`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": "application/json",
        "x-device-trust": "managed",
      },
      body,
    });
    const text = await response.text();
    return { status: response.status, body: (text === "" ? {} : JSON.parse(text)) as Json };
  }

  test("the unspliced call is allowed (the baseline)", async () => {
    const answer = await relay('"a.txt"');
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
  });

  for (const [name, fragment, problem, rule] of [
    ["a lone surrogate", '"a\\ud800.txt"', /lone UTF-16 surrogate/, "invalid_unicode"],
    ["a lone surrogate in a key", '{"\\udc00": 1}', /lone UTF-16 surrogate/, "invalid_unicode"],
    [
      "a number a double cannot hold",
      "900.00000000000000001",
      /cannot be represented exactly/,
      "number_unrepresentable",
    ],
    ["an out-of-range number", "1e400", /cannot be represented exactly/, "number_unrepresentable"],
  ] as const) {
    test(`${name}: 400, a JSON-RPC invalid request naming the problem`, async () => {
      const answer = await relay(fragment);
      assert.equal(answer.status, 400, JSON.stringify(answer.body));
      const error = answer.body.error as { code: number; message: string; data: Json };
      assert.equal(error.code, -32600);
      // The refusal, then the JSON rule behind it, with the pointer to the culprit.
      assert.deepEqual(error.data.reasons, ["mcp_invalid", rule]);
      assert.equal(typeof error.data.field, "string");
      assert.match(error.message, problem);
    });
  }
});
