/**
 * OPA's Data API over real HTTP: `POST|GET /v1/data/{path}` answers like OPA
 * (result or the undefined shape, OPA's error codes), keeps the PDP's limits,
 * is open only to callers that may assert subjects, counts and records every
 * query like any other decision, and works with the official OPA client.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import { OPAClient } from "@styra/opa";
import { SDKError, ServerError } from "@styra/opa/sdk/models/errors";
import { buildWasmBundle, repoRoot, scratchDir } from "../support/opa.ts";
import { startPdp, type RunningPdp } from "../support/pdp.ts";

type Json = Record<string, unknown>;

interface Reply {
  status: number;
  headers: Headers;
  body: Json;
}

interface PolicyCase {
  note: string;
  input: Json;
  expect: { allow: boolean; risk?: unknown };
}

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const decisionPath = "/v1/data/mcp/authz/decision";
const missingInputWarning = {
  code: "api_usage_warning",
  message: "'input' key missing from the request",
};

/** A case of the default policy that allows: an AuthZEN-shaped input as the PDP would build it. */
const allowing: PolicyCase = (() => {
  const file = join(repoRoot, "rego", "mcp", "authz", "cases", "defaults.json");
  const cases = (JSON.parse(readFileSync(file, "utf8")) as { defaults: { cases: PolicyCase[] } })
    .defaults.cases;
  const found = cases.find((c) => c.expect.allow);
  assert.ok(found, "defaults.json has an allowing case");
  assert.equal(
    (found.input.subject as { properties: Json }).properties.authenticated,
    true,
    "the case's subject is authenticated",
  );
  return found;
})();

async function call(
  base: string,
  method: string,
  path: string,
  body?: string | Uint8Array,
  headers: Record<string, string> = {},
): Promise<Reply> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...headers,
    },
    ...(body === undefined ? {} : { body }),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: (text === "" ? {} : JSON.parse(text)) as Json,
  };
}

const post = (base: string, path: string, body?: unknown, headers?: Record<string, string>) =>
  call(
    base,
    "POST",
    path,
    body === undefined || typeof body === "string" || body instanceof Uint8Array
      ? body
      : JSON.stringify(body),
    headers,
  );

/** mcp_pdp_data_queries_total by result, and the evaluation histogram's count, from /metrics. */
async function dataQueryCounts(base: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const counts: Record<string, number> = {};
  for (const match of text.matchAll(
    /^mcp_pdp_data_queries_total\{endpoint="opa_data",result="(\w+)"\} (\d+)$/gm,
  )) {
    counts[match[1] ?? ""] = Number(match[2]);
  }
  const histogram = /^mcp_pdp_evaluation_duration_seconds_count (\d+)$/m.exec(text);
  if (histogram !== null) counts.histogram = Number(histogram[1]);
  return counts;
}

/** The undefined answer: 200 and a decision id, no result. */
function assertUndefined(reply: Reply, label: string): void {
  assert.equal(reply.status, 200, label);
  assert.deepEqual(Object.keys(reply.body), ["decision_id"], label);
  assert.match(reply.body.decision_id as string, uuid, label);
}

/** An OPA `invalid_parameter` refusal naming the PDP's own code. */
function assertInvalid(reply: Reply, pdpCode: string, label: string): void {
  assert.equal(reply.status, 400, `${label}: ${JSON.stringify(reply.body)}`);
  assert.equal(reply.body.code, "invalid_parameter", label);
  assert.equal(typeof reply.body.message, "string", label);
  assert.equal((reply.body.errors as { code: string }[])[0]?.code, pdpCode, label);
  assert.ok(!("result" in reply.body), label);
}

function nested(depth: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < depth; i++) value = { a: value };
  return value;
}

describe("OPA Data API", () => {
  const env = { PDP_MAX_BODY_BYTES: "8192" };
  let pdp: RunningPdp;
  before(async () => {
    pdp = await startPdp({ env });
  });
  after(async () => {
    await pdp.close();
  });

  test("the decision entrypoint answers its document as the result, with a decision id", async () => {
    const reply = await post(pdp.url, decisionPath, { input: allowing.input });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.deepEqual(Object.keys(reply.body), ["result", "decision_id"]);
    const result = reply.body.result as { allow: boolean; risk: unknown; reasons: unknown[] };
    assert.equal(result.allow, true);
    if (allowing.expect.risk !== undefined) assert.deepEqual(result.risk, allowing.expect.risk);
    assert.match(reply.body.decision_id as string, uuid);
    assert.equal(reply.headers.get("x-decision-id"), reply.body.decision_id);
    const again = await post(pdp.url, decisionPath, { input: allowing.input });
    assert.notEqual(again.body.decision_id, reply.body.decision_id, "one id per request");
  });

  test("a key inside an entrypoint's result is selected, as in OPA", async () => {
    const allow = await post(pdp.url, `${decisionPath}/allow`, { input: allowing.input });
    assert.equal(allow.status, 200);
    assert.equal(allow.body.result, true);
    const code = await post(pdp.url, `${decisionPath}/reasons/0/code`, { input: {} });
    assert.equal(code.body.result, "token_missing");
    assertUndefined(await post(pdp.url, `${decisionPath}/nope`, { input: {} }), "missing key");
    assertUndefined(await post(pdp.url, `${decisionPath}/reasons/9`, { input: {} }), "index");
    assertUndefined(await post(pdp.url, `${decisionPath}/__proto__`, { input: {} }), "proto");
  });

  test("a path that names no entrypoint is undefined: 200, a decision id, no result", async () => {
    for (const path of [
      "/v1/data/mcp/authz/allow",
      "/v1/data/mcp/authz",
      "/v1/data/mcp",
      "/v1/data/nope/at/all",
      "/v1/data/mcp%2Fauthz/decision",
      "/v1/data/",
      "/v1/data",
    ]) {
      assertUndefined(await post(pdp.url, path, { input: allowing.input }), `POST ${path}`);
      assertUndefined(await call(pdp.url, "GET", path), `GET ${path}`);
    }
  });

  test("GET evaluates without input", async () => {
    const errors = await call(pdp.url, "GET", "/v1/data/mcp/authz/config_errors");
    assert.equal(errors.status, 200);
    assert.deepEqual(errors.body.result, []);
    assert.ok(!("warning" in errors.body));
    // Without input the decision is a deny, never an error.
    const decision = await call(pdp.url, "GET", decisionPath);
    assert.equal(decision.status, 200);
    assert.equal((decision.body.result as { allow: boolean }).allow, false);
  });

  test("GET takes OPA's ?input=; pretty, metrics and provenance are accepted and ignored", async () => {
    const query = new URLSearchParams({
      input: JSON.stringify(allowing.input),
      pretty: "true",
      metrics: "true",
      provenance: "true",
    });
    const reply = await call(pdp.url, "GET", `${decisionPath}?${query.toString()}`);
    assert.equal(reply.status, 200);
    assert.deepEqual(Object.keys(reply.body), ["result", "decision_id"]);
    assert.equal((reply.body.result as { allow: boolean }).allow, true);
    const flags = await post(pdp.url, `${decisionPath}?pretty&metrics&provenance&explain=full`, {
      input: allowing.input,
    });
    assert.deepEqual(Object.keys(flags.body), ["result", "decision_id"]);
    assertInvalid(
      await call(pdp.url, "GET", `${decisionPath}?input=%7B`),
      "invalid_json",
      "?input={",
    );
  });

  test("a POST without input (no body, blank, {}, null input) evaluates without input and warns, as OPA", async () => {
    for (const body of [undefined, "", " \n", "{}", '{"input": null}', '{"other": 1}']) {
      const reply = await post(pdp.url, "/v1/data/mcp/authz/config_errors", body);
      const label = JSON.stringify(body);
      assert.equal(reply.status, 200, label);
      assert.deepEqual(reply.body.result, [], label);
      assert.deepEqual(reply.body.warning, missingInputWarning, label);
    }
  });

  test("any JSON value is a valid input: a number reaches the policy, which denies", async () => {
    for (const input of [5, "x", false, [], true]) {
      const reply = await post(pdp.url, decisionPath, { input });
      assert.equal(reply.status, 200, JSON.stringify(input));
      const result = reply.body.result as { allow: boolean };
      assert.equal(result.allow, false, JSON.stringify(input));
      assert.ok(!("warning" in reply.body));
    }
  });

  test("a body that is not JSON, or not an object, is 400 invalid_parameter", async () => {
    const cases: [string, string][] = [
      ['{"input": @}', "invalid_json"],
      ['{"input": {"a": 1}', "invalid_json"],
      ["input=1", "invalid_json"],
      ["[1]", "invalid_request"],
      ["5", "invalid_request"],
      ["null", "invalid_request"],
      ['"input"', "invalid_request"],
    ];
    for (const [body, code] of cases) {
      assertInvalid(await post(pdp.url, decisionPath, body), code, body);
    }
  });

  test("the PDP's limits hold: size, depth, UTF-8", async () => {
    const large = JSON.stringify({ input: { pad: "x".repeat(9000) } });
    assertInvalid(await post(pdp.url, decisionPath, large), "body_too_large", "declared length");
    const chunked = await fetch(`${pdp.url}${decisionPath}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: new ReadableStream({
        start(controller) {
          for (let i = 0; i < 10; i++)
            controller.enqueue(new TextEncoder().encode(" ".repeat(1000)));
          controller.close();
        },
      }),
      duplex: "half",
    });
    assertInvalid(
      { status: chunked.status, headers: chunked.headers, body: (await chunked.json()) as Json },
      "body_too_large",
      "chunked",
    );
    assertInvalid(
      await post(pdp.url, decisionPath, { input: nested(40) }),
      "body_too_deep",
      "deep body",
    );
    const deepQuery = encodeURIComponent(JSON.stringify(nested(40)));
    assertInvalid(
      await call(pdp.url, "GET", `${decisionPath}?input=${deepQuery}`),
      "body_too_deep",
      "deep ?input=",
    );
    const notUtf8 = Buffer.concat([
      Buffer.from('{"input": "'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"}'),
    ]);
    assertInvalid(await post(pdp.url, decisionPath, notUtf8), "invalid_utf8", "invalid UTF-8");
  });

  test("hostile keys anywhere are refused, with the pointer in the message", async () => {
    for (const [body, pointer] of [
      ['{"input": {"__proto__": {"allow": true}}}', "/input/__proto__"],
      ['{"input": {"subject": {"constructor": {}}}}', "/input/subject/constructor"],
      ['{"input": [{"prototype": 1}]}', "/input/0/prototype"],
      ['{"__proto__": {"input": 1}}', "/__proto__"],
    ] as const) {
      const reply = await post(pdp.url, decisionPath, body);
      assertInvalid(reply, "forbidden_key", body);
      assert.ok((reply.body.message as string).endsWith(pointer), String(reply.body.message));
    }
  });

  test("a number a double cannot hold is number_unrepresentable, with the pointer in the message", async () => {
    for (const [body, pointer] of [
      ['{"input": {"n": 900.00000000000000001}}', "/input/n"],
      ['{"input": [1, 1e400]}', "/input/1"],
      ['{"input": 12345678901234567890}', "/input"],
      ['{"other": 4e-330, "input": 1}', "/other"],
    ] as const) {
      const reply = await post(pdp.url, decisionPath, body);
      assertInvalid(reply, "number_unrepresentable", body);
      assert.ok((reply.body.message as string).endsWith(pointer), String(reply.body.message));
    }
    const query = encodeURIComponent('{"n": 1e400}');
    const reply = await call(pdp.url, "GET", `${decisionPath}?input=${query}`);
    assertInvalid(reply, "number_unrepresentable", "?input=");
  });

  test("numbers that are exactly their double reach the policy", async () => {
    for (const literal of ["0.1", "1e3", "9.0e2", "-0", "5e-324", "1.7976931348623157e308"]) {
      const reply = await post(pdp.url, `${decisionPath}/allow`, `{"input": ${literal}}`);
      assert.equal(reply.status, 200, `${literal}: ${JSON.stringify(reply.body)}`);
      assert.equal(reply.body.result, false, literal);
    }
  });

  test("a lone surrogate is read as U+FFFD, as OPA reads it (no 500)", async () => {
    const input = JSON.stringify(allowing.input);
    const plain = await post(pdp.url, decisionPath, `{"input": ${input}}`);
    // The lone surrogate sits in a key the default policy never reads: the answer is unchanged.
    const spiced = input.replace('{"subject"', '{"note\\ud800":"\\udc00","subject"');
    assert.notEqual(spiced, input);
    const reply = await post(pdp.url, decisionPath, `{"input": ${spiced}}`);
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.deepEqual(reply.body.result, plain.body.result);
  });

  test("other methods are 405 with Allow: GET, POST", async () => {
    for (const method of ["PUT", "PATCH", "DELETE"]) {
      for (const path of [decisionPath, "/v1/data"]) {
        const reply = await call(pdp.url, method, path, "{}");
        assert.equal(reply.status, 405, `${method} ${path}`);
        assert.equal(reply.headers.get("allow"), "GET, POST");
        assert.equal(reply.body.code, "method_not_allowed");
      }
    }
  });

  describe("every kind of request gets OPA's shape from the one stack", () => {
    interface Probe {
      name: string;
      method?: string;
      path?: string;
      headers?: Record<string, string>;
      body?: string | Uint8Array;
      /** Status, and OPA's code for an error. */
      expect: { status: number; code?: string; result?: boolean };
    }
    const ok = { status: 200 };
    const invalid = { status: 400, code: "invalid_parameter" };
    const probes: Probe[] = [
      {
        name: "allowing input",
        body: JSON.stringify({ input: allowing.input }),
        expect: { status: 200, result: true },
      },
      {
        name: "sub-document",
        path: `${decisionPath}/allow`,
        body: JSON.stringify({ input: 1 }),
        expect: { status: 200, result: true },
      },
      {
        name: "no entrypoint",
        path: "/v1/data/x/y",
        body: '{"input": {}}',
        expect: { status: 200, result: false },
      },
      { name: "GET", method: "GET", expect: { status: 200, result: true } },
      { name: "HEAD", method: "HEAD", expect: ok },
      {
        name: "GET with input",
        method: "GET",
        path: `${decisionPath}?input=false&pretty`,
        expect: { status: 200, result: true },
      },
      { name: "empty body", expect: { status: 200, result: true } },
      {
        name: "gzip body",
        headers: { "content-encoding": "gzip" },
        body: gzipSync(JSON.stringify({ input: allowing.input })),
        expect: { status: 200, result: true },
      },
      {
        name: "unknown Content-Encoding",
        headers: { "content-encoding": "x-rot13" },
        body: "{}",
        expect: invalid,
      },
      {
        name: "corrupt gzip",
        headers: { "content-encoding": "gzip" },
        body: "{}",
        expect: invalid,
      },
      { name: "malformed", body: '{"input": @}', expect: invalid },
      { name: "not an object", body: "[]", expect: invalid },
      { name: "too large", body: JSON.stringify({ input: "x".repeat(9000) }), expect: invalid },
      { name: "too deep", body: JSON.stringify({ input: nested(40) }), expect: invalid },
      { name: "hostile key", body: '{"input": {"a": {"__proto__": 1}}}', expect: invalid },
      { name: "bad UTF-8", body: new Uint8Array([0x7b, 0xff, 0x7d]), expect: invalid },
      {
        name: "lone surrogate (read as U+FFFD, as OPA)",
        body: '{"input": {"a\\ud800": "\\udc00"}}',
        expect: { status: 200, result: true },
      },
      { name: "unrepresentable number", body: '{"input": {"n": 1e400}}', expect: invalid },
      { name: "405", method: "DELETE", expect: { status: 405, code: "method_not_allowed" } },
    ];

    for (const probe of probes) {
      test(probe.name, async () => {
        const response = await fetch(`${pdp.url}${probe.path ?? decisionPath}`, {
          method: probe.method ?? "POST",
          ...(probe.headers === undefined ? {} : { headers: probe.headers }),
          ...(probe.body === undefined ? {} : { body: probe.body }),
        });
        const text = await response.text();
        assert.equal(response.status, probe.expect.status, text);
        assert.equal(response.headers.get("content-type"), "application/json; charset=utf-8");
        if (probe.method === "HEAD") return;
        const body = JSON.parse(text) as Json;
        if (probe.expect.code !== undefined) {
          assert.equal(body.code, probe.expect.code, text);
          assert.equal(typeof body.message, "string");
          if (probe.expect.status === 405) assert.equal(response.headers.get("allow"), "GET, POST");
          return;
        }
        assert.match(String(body.decision_id), /^[0-9a-f-]{36}$/);
        assert.equal(response.headers.get("x-decision-id"), body.decision_id);
        assert.equal("result" in body, probe.expect.result, text);
      });
    }
  });

  describe("the official OPA client (@styra/opa)", () => {
    test("evaluate(path, input) returns the decision document", async () => {
      const opa = new OPAClient(pdp.url);
      const decision = await opa.evaluate<Json, { allow: boolean }>(
        "mcp/authz/decision",
        allowing.input,
      );
      assert.equal(decision.allow, true);
      assert.equal(await opa.evaluate("mcp/authz/decision/allow", allowing.input), true);
    });

    test("evaluate(path) without input is a GET and evaluates without input", async () => {
      const opa = new OPAClient(pdp.url);
      assert.deepEqual(await opa.evaluate("mcp/authz/config_errors"), []);
      const decision = await opa.evaluate<never, { allow: boolean }>("mcp/authz/decision");
      assert.equal(decision.allow, false);
    });

    test("an undefined path resolves to undefined (the result key is omitted), as documented", async () => {
      const opa = new OPAClient(pdp.url);
      assert.equal(await opa.evaluate("mcp/authz/nope", allowing.input), undefined);
      assert.equal(await opa.evaluate("mcp/authz/nope"), undefined);
      // The documented idiom for a boolean with a default: fromResult sees undefined.
      const allowed = await opa.evaluate<Json, boolean>("mcp/authz/allow", allowing.input, {
        fromResult: (result) => result === true,
      });
      assert.equal(allowed, false);
    });
  });
});

describe("OPA Data API: who may call it", () => {
  const scratch = scratchDir();
  const newKey = () => randomBytes(24).toString("base64url");
  const sha256Hex = (key: string) => createHash("sha256").update(key, "utf8").digest("hex");
  const keys = {
    gateway: newKey(),
    pep: newKey(),
    assertingPep: newKey(),
    defaultPermissions: newKey(),
    unknown: newKey(),
  };
  const config = join(scratch.dir, "callers.json");
  writeFileSync(
    config,
    JSON.stringify({
      callers: [
        { name: "gateway", api_key_sha256: [sha256Hex(keys.gateway)], assert_subject: true },
        { name: "pep", api_key_sha256: [sha256Hex(keys.pep)], permissions: ["authzen"] },
        {
          name: "asserting-pep",
          api_key_sha256: [sha256Hex(keys.assertingPep)],
          permissions: ["authzen", "forward_auth"],
          assert_subject: true,
        },
        { name: "plain", api_key_sha256: [sha256Hex(keys.defaultPermissions)] },
      ],
    }),
  );
  const servers: RunningPdp[] = [];
  before(async () => {
    servers.push(await startPdp({ env: { PDP_CONFIG: config } }));
  });
  after(async () => {
    await Promise.all(servers.map((server) => server.close()));
    scratch.remove();
  });

  const body = JSON.stringify({ input: allowing.input });

  test("a caller that may assert subjects (opa_data by default) gets decisions", async () => {
    for (const server of servers) {
      const reply = await post(server.url, decisionPath, body, { "x-api-key": keys.gateway });
      assert.equal(reply.status, 200);
      assert.equal((reply.body.result as { allow: boolean }).allow, true);
      const get = await call(server.url, "GET", decisionPath, undefined, {
        "x-api-key": keys.gateway,
      });
      assert.equal(get.status, 200);
    }
  });

  test("a caller without assert_subject, or without opa_data, is 403 caller_forbidden", async () => {
    for (const server of servers) {
      for (const key of [keys.pep, keys.defaultPermissions, keys.assertingPep]) {
        for (const method of ["POST", "GET"]) {
          const reply = await call(
            server.url,
            method,
            decisionPath,
            method === "POST" ? body : undefined,
            {
              "x-api-key": key,
            },
          );
          assert.equal(reply.status, 403, `${method} ${JSON.stringify(reply.body)}`);
          assert.equal(reply.body.code, "caller_forbidden");
          assert.ok(!("result" in reply.body));
        }
      }
    }
  });

  test("no or unknown credentials are 401 caller_unauthenticated with a challenge", async () => {
    for (const server of servers) {
      for (const headers of [{}, { "x-api-key": keys.unknown }]) {
        const reply = await post(server.url, decisionPath, body, headers);
        assert.equal(reply.status, 401);
        assert.equal(reply.body.code, "caller_unauthenticated");
        assert.match(reply.headers.get("www-authenticate") ?? "", /^ApiKey /);
      }
    }
  });

  test("credentials are checked before the body is parsed", async () => {
    const reply = await post(servers[0]?.url ?? "", decisionPath, "{not json", {
      "x-api-key": keys.pep,
    });
    assert.equal(reply.status, 403);
  });

  test("the OPA client passes the API key with its headers option", async () => {
    const url = servers[0]?.url ?? "";
    const gateway = new OPAClient(url, { headers: { "x-api-key": keys.gateway } });
    assert.equal(await gateway.evaluate("mcp/authz/decision/allow", allowing.input), true);
    const pep = new OPAClient(url, { headers: { "x-api-key": keys.pep } });
    await assert.rejects(pep.evaluate("mcp/authz/decision", allowing.input), (error: unknown) => {
      assert.ok(error instanceof SDKError, String(error));
      assert.equal(error.httpMeta.response.status, 403);
      return true;
    });
  });
});

describe("OPA Data API: inputs and failures, with a custom bundle", () => {
  const scratch = scratchDir();
  let pdp: RunningPdp;
  before(async () => {
    const bundle = buildWasmBundle(
      scratch.dir,
      {
        "probe.rego": `package probe

echo := input

conflict := x if x := input.a

conflict := y if y := input.b
`,
      },
      ["probe/echo", "probe/conflict"],
    );
    pdp = await startPdp({
      env: { PDP_BUNDLE: bundle, PDP_ENTRYPOINT: "probe/echo", PDP_DECISION_LOG_INPUT: "true" },
    });
  });
  after(async () => {
    await pdp.close();
    scratch.remove();
  });

  test("the input reaches the policy exactly as sent: no PDP clock, no token check", async () => {
    const input = {
      subject: { type: "user", id: "alice", properties: { token: "not.a.jwt", auth_time: 1 } },
      action: { name: "tools/call" },
      resource: { type: "tool", id: "files/read_file" },
    };
    const reply = await post(pdp.url, "/v1/data/probe/echo", { input });
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.body.result, input);
  });

  test("falsy inputs reach the policy as input, never as 'no input'", async () => {
    for (const input of [false, 0, "", [], {}, { a: null }]) {
      const reply = await post(pdp.url, "/v1/data/probe/echo", { input });
      assert.equal(reply.status, 200, JSON.stringify(input));
      assert.ok("result" in reply.body, `result for ${JSON.stringify(input)}`);
      assert.deepEqual(reply.body.result, input);
    }
    const get = await call(pdp.url, "GET", "/v1/data/probe/echo?input=false");
    assert.equal(get.body.result, false);
    // OPA reads ?input=null as the null document (only a POSTed null means "no input").
    const getNull = await call(pdp.url, "GET", "/v1/data/probe/echo?input=null");
    assert.ok("result" in getNull.body);
    assert.equal(getNull.body.result, null);
  });

  test("no input leaves input undefined", async () => {
    assertUndefined(await call(pdp.url, "GET", "/v1/data/probe/echo"), "GET");
    const posted = await post(pdp.url, "/v1/data/probe/echo", '{"input": null}');
    assert.deepEqual(Object.keys(posted.body).sort(), ["decision_id", "warning"]);
  });

  test("an evaluation failure is 500 internal_error with the decision id, and a log line", async () => {
    const reply = await post(pdp.url, "/v1/data/probe/conflict", { input: { a: 1, b: 2 } });
    assert.equal(reply.status, 500);
    assert.equal(reply.body.code, "internal_error");
    assert.ok(!("result" in reply.body));
    const id = reply.body.decision_id;
    assert.match(id as string, uuid);
    const line = pdp.logs.find((l) => l.decision_id === id);
    assert.ok(line, "the failure is logged");
    assert.equal(line.level, "warn");
    assert.equal(line.entrypoint, "probe/conflict");
    assert.match(String(line.error), /conflict/);
    // Agreeing rules are no conflict.
    const agreed = await post(pdp.url, "/v1/data/probe/conflict", { input: { a: 1, b: 1 } });
    assert.equal(agreed.body.result, 1);
  });

  test("every query is recorded like OPA's Data API decision log, under the id it answered with", async () => {
    const asked = await post(
      pdp.url,
      "/v1/data/probe/echo/a",
      { input: { a: [1] } },
      {
        "x-request-id": "query-1",
      },
    );
    assert.equal(asked.status, 200);
    assert.equal(asked.headers.get("x-decision-id"), asked.body.decision_id);
    const record = pdp.decisions.find((r) => r.decision_id === asked.body.decision_id);
    assert.ok(record, "one record per query");
    assert.equal(record.endpoint, "opa_data");
    assert.equal(record.path, "probe/echo/a", "OPA's path: the data path asked for");
    assert.equal(record.entrypoint, "probe/echo");
    assert.deepEqual(record.input, { a: [1] });
    assert.deepEqual(record.result, [1], "the document answered, not the whole entrypoint");
    assert.equal(record.req_id, "query-1");
    assert.equal(typeof record.timestamp, "string");
    assert.deepEqual(record.bundles, { default: { revision: record.revision } });
    assert.equal(typeof (record.metrics as Json).timer_eval_ns, "number");

    const undefinedPath = await post(pdp.url, "/v1/data/probe/nothing", { input: 1 });
    const quiet = pdp.decisions.find((r) => r.decision_id === undefinedPath.body.decision_id);
    assert.ok(quiet, "an undefined document is recorded too");
    assert.ok(!("result" in quiet));
    assert.equal(quiet.entrypoint, null);

    const failed = await post(pdp.url, "/v1/data/probe/conflict", { input: { a: 1, b: 2 } });
    const failure = pdp.decisions.find((r) => r.decision_id === failed.body.decision_id);
    assert.ok(failure, "a failed query is recorded under the id of its 500 and its log line");
    assert.deepEqual(failure.error, { code: "evaluation_error" });
    assert.ok(!("result" in failure));
  });

  test("queries are counted by result, and their evaluations join the decisions' histogram", async () => {
    const before = await dataQueryCounts(pdp.url);
    await post(pdp.url, "/v1/data/probe/echo", { input: 1 });
    await post(pdp.url, "/v1/data/probe/nothing", { input: 1 });
    await post(pdp.url, "/v1/data/probe/conflict", { input: { a: 1, b: 2 } });
    const after = await dataQueryCounts(pdp.url);
    for (const result of ["defined", "undefined", "error"]) {
      assert.equal((after[result] ?? 0) - (before[result] ?? 0), 1, result);
    }
    // Two evaluations: the path naming no entrypoint evaluated nothing.
    assert.equal((after.histogram ?? 0) - (before.histogram ?? 0), 2);
  });

  test("the OPA client raises its ServerError for the 500, with OPA's code", async () => {
    const opa = new OPAClient(pdp.url);
    await assert.rejects(opa.evaluate("probe/conflict", { a: 1, b: 2 }), (error: unknown) => {
      assert.ok(error instanceof ServerError, String(error));
      assert.equal(error.code, "internal_error");
      return true;
    });
    assert.equal(await opa.evaluate("probe/echo", false), false);
  });
});

describe("OPA Data API: base documents, with operator data", () => {
  const scratch = scratchDir();
  const operatorFile = join(scratch.dir, "operator.json");
  const bundleData = JSON.parse(readFileSync(join(repoRoot, "rego", "data.json"), "utf8")) as {
    risk_classes: Json;
    risk_order: string[];
  };
  let pdp: RunningPdp;
  before(async () => {
    writeFileSync(
      operatorFile,
      JSON.stringify({ operator: { "0": "zero", list: ["a", "b"] }, mcp: { extra: { n: 1 } } }),
    );
    pdp = await startPdp({ env: { PDP_DATA: operatorFile } });
  });
  after(async () => {
    await pdp.close();
    scratch.remove();
  });

  test("a path into the bundle's data or the operator data answers that document, by GET and POST", async () => {
    for (const reply of [
      await call(pdp.url, "GET", "/v1/data/risk_classes/read"),
      await post(pdp.url, "/v1/data/risk_classes/read", { input: allowing.input }),
    ]) {
      assert.equal(reply.status, 200);
      assert.deepEqual(Object.keys(reply.body), ["result", "decision_id"]);
      assert.deepEqual(reply.body.result, bundleData.risk_classes.read);
      assert.equal(reply.headers.get("x-decision-id"), reply.body.decision_id);
    }
    assert.deepEqual((await call(pdp.url, "GET", "/v1/data/operator/list")).body.result, [
      "a",
      "b",
    ]);
    assert.deepEqual((await call(pdp.url, "GET", "/v1/data/mcp/extra")).body.result, { n: 1 });
    // Above an entrypoint OPA would merge every rule's value in: the PDP answers nothing, not a part.
    assertUndefined(await call(pdp.url, "GET", "/v1/data/mcp"), "a package holding data");
    assertUndefined(await call(pdp.url, "GET", "/v1/data"), "the root");
  });

  test("segments read as OPA reads them: numbers index arrays and name keys by their canonical spelling", async () => {
    const at = async (path: string) => (await call(pdp.url, "GET", `/v1/data/${path}`)).body.result;
    for (const index of ["0", "00", "+0", "-0", "0.0", ".0"]) {
      assert.equal(await at(`risk_order/${index}`), bundleData.risk_order[0], index);
    }
    for (const index of ["1.0", "01", "+1", "1."]) {
      assert.equal(await at(`risk_order/${index}`), bundleData.risk_order[1], index);
    }
    for (const index of ["1e0", "1.5", "-1", "3", "x", "0x1"]) {
      assertUndefined(await call(pdp.url, "GET", `/v1/data/risk_order/${index}`), index);
    }
    assert.equal(await at("operator/00"), "zero");
    assert.equal(await at("operator/list/1.0"), "b");
    // Inside an entrypoint's result an object takes no number (OPA: undefined or a type error).
    assertUndefined(await call(pdp.url, "GET", "/v1/data/mcp/authz/decision/reasons/0/0"), "n");
    assert.equal(await at("mcp/authz/decision/reasons/00/code"), "token_missing");
  });

  test("a base document is recorded and counted as a defined query, with no evaluation", async () => {
    const before = await dataQueryCounts(pdp.url);
    const reply = await call(pdp.url, "GET", "/v1/data/operator/0");
    const after = await dataQueryCounts(pdp.url);
    assert.equal((after.defined ?? 0) - (before.defined ?? 0), 1);
    assert.equal(after.histogram, before.histogram, "nothing was evaluated");
    const record = pdp.decisions.find((r) => r.decision_id === reply.body.decision_id);
    assert.ok(record);
    assert.equal(record.path, "operator/0");
    assert.equal(record.entrypoint, null);
    assert.equal(record.result, "zero");
  });

  test("a trailing slash is OPA's 301 (the query dropped), an unclean path its 307 (kept); neither is a query", async () => {
    const records = pdp.decisions.length;
    const manual = async (method: string, path: string) => {
      const response = await fetch(`${pdp.url}${path}`, {
        method,
        redirect: "manual",
        ...(method === "POST"
          ? { body: "{}", headers: { "content-type": "application/json" } }
          : {}),
      });
      await response.arrayBuffer();
      return [response.status, response.headers.get("location")];
    };
    assert.deepEqual(await manual("GET", `${decisionPath}/?input=%7B%7D`), [301, decisionPath]);
    assert.deepEqual(await manual("POST", `${decisionPath}/`), [301, decisionPath]);
    assert.deepEqual(await manual("GET", "/v1/data/"), [301, "/v1/data"]);
    assert.deepEqual(await manual("GET", "/v1/data//risk_order?input=1"), [
      307,
      "/v1/data/risk_order?input=1",
    ]);
    assert.deepEqual(await manual("POST", "/v1/data//mcp/authz/decision/"), [
      307,
      `${decisionPath}/`,
    ]);
    assert.equal(pdp.decisions.length, records, "a redirect evaluates nothing and records nothing");
  });

  test("a quote in a segment is OPA's 500: it cannot be written into OPA's query", async () => {
    const reply = await call(pdp.url, "GET", "/v1/data/risk_order/%22");
    assert.equal(reply.status, 500);
    assert.deepEqual(reply.body, {
      code: "internal_error",
      message: `invalid_parameter: invalid path: invalid ref term '"'`,
    });
  });
});
