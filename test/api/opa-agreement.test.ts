/**
 * The compiled policy and OPA's own evaluator never disagree because of how
 * a JSON body is read. Both run the default policy side by side: the PDP
 * (wasm, over real HTTP on loopback) and the pinned OPA (scripts/ensure-opa.sh)
 * on the same Rego sources and data — as a server on 127.0.0.1 for lone
 * surrogates, as `opa eval` for numbers.
 *
 * - A lone surrogate escape (`"\ud800"`): OPA (Go's encoding/json) reads
 *   U+FFFD; the OPA Data API reads the same, so both answer alike.
 * - A number literal a double cannot hold (`900.00000000000000001`): OPA
 *   compares the exact decimal, the wasm policy its double; the PDP refuses
 *   the literal (400) instead of answering what OPA would not. Every literal
 *   it accepts gets OPA's answer.
 * - Paths: base documents of the bundle's data and the operator data (both
 *   sides load the same operator file), index spellings, trailing slashes
 *   and unclean paths (OPA's redirects), quotes: a table of paths x methods,
 *   each answered alike (status, body shape, result); and the documented
 *   differences, each pinned as the PDP answers it and OPA does.
 */
import assert from "node:assert/strict";
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readFileSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "../support/ports.ts";
import { opaPath, repoRoot, scratchDir } from "../support/opa.ts";
import { startPdp, type RunningPdp } from "../support/pdp.ts";

type Json = Record<string, unknown>;

interface Reply {
  status: number;
  body: Json;
}

interface DecisionDocument {
  allow: boolean;
  reasons: { code: string; admin: string; user: string }[];
  risk: unknown;
  obligations: unknown;
}

const decisionPath = "/v1/data/mcp/authz/decision";
/** The Rego sources and data as the bundle is built from them: no tests, no cases. */
const opaSources = ["--ignore", "*_test.rego", "--ignore", "cases", join(repoRoot, "rego")];

/** The default profile's "auth 1200 s old" case: destructive, max_auth_age_s 900. */
const destructiveCase = (() => {
  const file = join(repoRoot, "rego", "mcp", "authz", "cases", "defaults.json");
  const cases = (
    JSON.parse(readFileSync(file, "utf8")) as {
      defaults: { cases: { note: string; input: Json }[] };
    }
  ).defaults.cases;
  const found = cases.find((c) => c.note.includes("max_auth_age_s is 900"));
  assert.ok(found, "defaults.json has the max_auth_age_s 900 case");
  return found.input;
})();

/** The destructive case as JSON text with `auth_age_s` spelt `literal`, exactly. */
function withAuthAge(literal: string): string {
  const marker = 987654321;
  const input = structuredClone(destructiveCase) as {
    subject: { properties: Record<string, unknown> };
  };
  input.subject.properties.auth_age_s = marker;
  const text = JSON.stringify(input);
  assert.equal(text.split(String(marker)).length, 2, "the marker appears once");
  return text.replace(String(marker), literal);
}

async function call(base: string, path: string, body?: string): Promise<Reply> {
  const response = await fetch(`${base}${path}`, {
    method: body === undefined ? "GET" : "POST",
    ...(body === undefined ? {} : { headers: { "content-type": "application/json" }, body }),
  });
  const text = await response.text();
  return { status: response.status, body: (text === "" ? {} : JSON.parse(text)) as Json };
}

/**
 * Operator data, loaded by both (PDP_DATA; a data file beside the sources
 * for OPA): keys that only look like numbers, an array, null and false, a
 * key holding "/", and a base document under the policy's own prefix.
 * New top-level keys only, so both merge it alike and no decision changes.
 */
const operatorData = {
  operator: {
    "0": "zero",
    "1": "one",
    "-1": "minus-one",
    "1.5": "one-five",
    "2.50": "two-fifty",
    "1e0": "exponent",
    list: [10, 20, { k: "v" }],
    "a/b": "slashed",
    nul: null,
    f: false,
  },
  mcp: { extra: { n: 1 } },
};

const scratch = scratchDir();
const operatorFile = join(scratch.dir, "operator.json");
writeFileSync(operatorFile, JSON.stringify(operatorData));
let pdp: RunningPdp;
let opaServer: ChildProcess | undefined;
let opaUrl = "";

before(async () => {
  pdp = await startPdp({ env: { PDP_DATA: operatorFile } });
  const port = await freePort();
  opaUrl = `http://127.0.0.1:${port}`;
  opaServer = spawn(
    opaPath(),
    [
      "run",
      "--server",
      "--addr",
      `127.0.0.1:${port}`,
      "--log-level",
      "error",
      "--skip-version-check",
      ...opaSources,
      operatorFile,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  // OPA's stderr is shown only if it fails to start (it warns about running as root otherwise).
  let stderr = "";
  opaServer.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  // Bounded wait: 30 s at most, for a cold start on a busy machine.
  for (let attempt = 0; ; attempt++) {
    try {
      if ((await fetch(`${opaUrl}/health`)).ok) break;
    } catch {
      // not listening yet
    }
    assert.ok(attempt < 300, `OPA started within 30 s: ${stderr}`);
    assert.equal(opaServer.exitCode, null, `OPA is still running: ${stderr}`);
    await sleep(100);
  }
});

after(async () => {
  if (opaServer !== undefined && opaServer.exitCode === null) {
    const exited = once(opaServer, "exit");
    opaServer.kill("SIGTERM");
    await exited;
  }
  await pdp.close();
  scratch.remove();
});

describe("lone surrogates: the OPA Data API answers what OPA answers", () => {
  // JSON text as sent; "\\ud800" is the six characters of a JSON escape.
  const base = JSON.stringify(destructiveCase);
  const placements: [string, string][] = [
    ["in the MCP method", base.replace('"tools/call"', '"tools/\\ud800call"')],
    ["in the tool id", base.replace('"fetch"', '"fe\\udc00tch"')],
    ["in the server", base.replace('"web"', '"w\\ud800\\ud800\\udc00eb"')],
    ["in the subject id", base.replace('"alice"', '"\\udbffalice"')],
    ["in a key the policy reads", base.replace('"device"', '"dev\\ud800ice"')],
    ["in a scope", base.replace('"mcp:admin"', '"mcp:admin\\udfff"')],
  ];

  for (const [name, input] of placements) {
    test(`${name}: same result as OPA`, async () => {
      assert.notEqual(input, base, "the placement changed the input");
      const body = `{"input":${input}}`;
      const [ours, theirs] = await Promise.all([
        call(pdp.url, decisionPath, body),
        call(opaUrl, decisionPath, body),
      ]);
      assert.equal(theirs.status, 200, JSON.stringify(theirs.body));
      assert.equal(ours.status, 200, JSON.stringify(ours.body));
      assert.deepEqual(ours.body.result, theirs.body.result);
    });
  }

  test("the replacement reaches the policy: a quoted name carries U+FFFD in both", async () => {
    const body = `{"input":${placements[0]?.[1] ?? ""}}`;
    const [ours, theirs] = await Promise.all([
      call(pdp.url, decisionPath, body),
      call(opaUrl, decisionPath, body),
    ]);
    const messages = (reply: Reply) =>
      (reply.body.result as DecisionDocument).reasons.map((reason) => reason.admin).join(" ");
    assert.ok(messages(theirs).includes("tools/\ufffdcall"), messages(theirs));
    assert.equal(messages(ours), messages(theirs));
  });

  test("GET ?input= reads them alike too", async () => {
    const query = `?input=${encodeURIComponent(placements[1]?.[1] ?? "")}`;
    const [ours, theirs] = await Promise.all([
      call(pdp.url, `${decisionPath}${query}`),
      call(opaUrl, `${decisionPath}${query}`),
    ]);
    assert.equal(theirs.status, 200);
    assert.equal(ours.status, 200, JSON.stringify(ours.body));
    assert.deepEqual(ours.body.result, theirs.body.result);
  });
});

describe("numbers: opa eval and the PDP agree around max_auth_age_s 900", () => {
  /** Literals that are exactly their double: the PDP evaluates them. */
  const faithful = [
    "0",
    "899",
    "900",
    "900.0",
    "9.0e2",
    "9e2",
    "0.9e3",
    "90000e-2",
    "899.9999999999999",
    "900.000000000001",
    "900.0000000000001",
    "901",
    "1.5e3",
  ];
  /** Literals a double cannot hold: OPA sees more (or less) than 900 where the double is 900. */
  const unfaithful = [
    "900.00000000000000001",
    "900.0000000000000001",
    "9.00000000000000000001e2",
    "899.99999999999999999",
  ];

  /** `opa eval` of the decision for each input text, in one process. */
  function opaDecisions(inputs: string[]): DecisionDocument[] {
    const file = join(scratch.dir, `inputs-${inputs.length}-${Date.now()}.json`);
    writeFileSync(file, `{"cases":[${inputs.join(",")}]}`);
    const output = execFileSync(
      opaPath(),
      [
        "eval",
        "--format",
        "json",
        "--input",
        file,
        "--data",
        join(repoRoot, "rego"),
        ...opaSources.slice(0, 4),
        "[d | some c in input.cases; d := data.mcp.authz.decision with input as c]",
      ],
      { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
    );
    const parsed = JSON.parse(output) as {
      result: { expressions: { value: DecisionDocument[] }[] }[];
    };
    const value = parsed.result[0]?.expressions[0]?.value;
    assert.ok(value !== undefined && value.length === inputs.length, output.slice(0, 500));
    return value;
  }

  const codes = (decision: DecisionDocument) => decision.reasons.map((reason) => reason.code);

  test("every literal the PDP accepts gets OPA's decision", async () => {
    const opa = opaDecisions(faithful.map(withAuthAge));
    const outcomes = new Set<boolean>();
    for (const [index, literal] of faithful.entries()) {
      const reply = await call(pdp.url, decisionPath, `{"input":${withAuthAge(literal)}}`);
      assert.equal(reply.status, 200, `${literal}: ${JSON.stringify(reply.body)}`);
      const ours = reply.body.result as DecisionDocument;
      const theirs = opa[index];
      assert.ok(theirs);
      assert.equal(ours.allow, theirs.allow, literal);
      assert.deepEqual(codes(ours), codes(theirs), literal);
      outcomes.add(ours.allow);
    }
    // The boundary is crossed: some literals allow, some are too old.
    assert.deepEqual([...outcomes].sort(), [false, true]);
  });

  test("a literal a double cannot hold is 400, where OPA and the double would disagree", async () => {
    const exact = opaDecisions(unfaithful.map(withAuthAge));
    // What the compiled policy would have seen: the literal's double, written back as JSON.
    const asDoubles = opaDecisions(unfaithful.map((l) => withAuthAge(JSON.stringify(Number(l)))));
    let disagreements = 0;
    for (const [index, literal] of unfaithful.entries()) {
      const reply = await call(pdp.url, decisionPath, `{"input":${withAuthAge(literal)}}`);
      assert.equal(reply.status, 400, `${literal}: ${JSON.stringify(reply.body)}`);
      assert.equal(reply.body.code, "invalid_parameter", literal);
      const [error] = reply.body.errors as { code: string; message: string }[];
      assert.ok(error, literal);
      assert.equal(error.code, "number_unrepresentable", literal);
      assert.match(error.message, /at \/input\/subject\/properties\/auth_age_s$/);
      assert.ok(!("result" in reply.body));
      if (exact[index]?.allow !== asDoubles[index]?.allow) disagreements++;
    }
    // 900.00000000000000001 and its kin: OPA says too old, the double (900) says fresh.
    assert.equal(disagreements, 3);
    assert.deepEqual(codes(exact[0] as DecisionDocument), ["auth_too_old"]);
    assert.equal(asDoubles[0]?.allow, true);
  });
});

/** What a server answered, as compared: status, redirect target, body keys (no decision id), result, error. */
interface PathAnswer {
  status: number;
  location: string | null;
  keys: string[];
  result?: unknown;
  code?: unknown;
  message?: unknown;
}

/** One request with its path exactly as written (fetch would clean `.` and `..`), no redirect followed. */
function rawCall(base: string, method: string, path: string): Promise<PathAnswer> {
  const { hostname, port } = new URL(base);
  const body = method === "POST" ? '{"input":{}}' : undefined;
  return new Promise((resolve, reject) => {
    const sent = httpRequest(
      {
        host: hostname,
        port,
        method,
        path,
        headers: body === undefined ? {} : { "content-type": "application/json" },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => {
          const status = response.statusCode ?? 0;
          const text = Buffer.concat(chunks).toString("utf8");
          // Redirects carry HTML, Go's own 400 plain text: only JSON bodies are compared.
          const isJson = (response.headers["content-type"] ?? "").includes("json");
          const json = (isJson && text !== "" ? JSON.parse(text) : {}) as Json;
          resolve({
            status,
            location: response.headers.location ?? null,
            keys: Object.keys(json)
              .filter((key) => key !== "decision_id")
              .sort(),
            ...("result" in json ? { result: json.result } : {}),
            ...("code" in json ? { code: json.code, message: json.message } : {}),
          });
        });
      },
    );
    sent.on("error", reject);
    sent.end(body);
  });
}

/** OPA's 500 for a path its type checker refuses. */
const typeError = (answer: PathAnswer): boolean =>
  answer.status === 500 &&
  answer.code === "internal_error" &&
  String(answer.message).includes("rego_type_error");

describe("paths: the Data API answers each path as OPA does", () => {
  /** Paths both answer alike, by GET (no input) and by POST (`{"input":{}}`). */
  const agreed = [
    // Base documents: the bundle's data, the operator data.
    "/v1/data/risk_classes/read",
    "/v1/data/risk_classes/read/max_auth_age_s",
    "/v1/data/risk_classes/read/max_auth_age_s/0",
    "/v1/data/tools",
    "/v1/data/tools/x",
    "/v1/data/unknown_tool",
    "/v1/data/unknown_tool/0",
    "/v1/data/methods/tools%2Flist",
    "/v1/data/methods/tools/list",
    "/v1/data/nope/at/all",
    "/v1/data/mcp/nope",
    "/v1/data/mcp/extra",
    "/v1/data/mcp/extra/n",
    "/v1/data/operator/list/2/k",
    "/v1/data/operator/a%2Fb",
    "/v1/data/operator/nul",
    "/v1/data/operator/nul/x",
    "/v1/data/operator/f",
    "/v1/data/operator/missing",
    // Index spellings on an array base document.
    ...[
      "0",
      "00",
      "+0",
      "-0",
      "01",
      "+1",
      "1.0",
      "1.",
      ".0",
      "00.00",
      "2.000",
      "1e0",
      "1E0",
      "1.5",
      "1.0e0",
      "0x1",
      "-1",
      "-1.0",
      "3",
      "x",
      "9223372036854775807",
      "18446744073709551616",
      "1.0000000000000000001",
    ].map((index) => `/v1/data/risk_order/${index}`),
    // Numeric spellings as object keys of a base document.
    ...["0", "00", "+0", "-0", "1.0", "01", "-1", "-1.0", "1.5", "1.50", "2.50", "2.5", "1e0"].map(
      (key) => `/v1/data/operator/${key}`,
    ),
    // Entrypoints and what lies inside their results.
    "/v1/data/mcp/authz/decision",
    "/v1/data/mcp/authz/decision/allow",
    "/v1/data/mcp/authz/config_errors",
    ...["0", "00", "+0", "-0", "0.0", "1.0", "1", "0/code", "00/code"].map(
      (index) => `/v1/data/mcp/authz/decision/reasons/${index}`,
    ),
    // OPA's router: a trailing slash is 301 (the query dropped), an unclean path 307 (kept).
    "/v1/data/",
    "/v1/data/mcp/authz/decision/",
    "/v1/data/risk_classes/read/",
    "/v1/data/risk_order%2F",
    "/v1/data/risk_order/?input=%7B%7D",
    "/v1/data//risk_order",
    "/v1/data//risk_order?input=%7B%7D",
    "/v1/data/./risk_order",
    "/v1/data/x/../risk_order",
    "/v1/data/risk_order/.",
    "/v1/data//mcp/authz/decision/",
    "/v1/data/risk_order%2F%2F",
    "/v1/data/risk_order/x%2F",
    "/v1/data/methods/tools%2Flist/",
    "/v1/data/%2B0/",
    "/v1/data/%2F",
    "/v1/data/x%2F%2Frisk_order",
    "/v1/data/x%2F..%2Frisk_order",
    // Escaped dots are no path dots: "." is a number (0) to OPA, ".." a key.
    "/v1/data/risk_order/%2e",
    "/v1/data/risk_order/%2e%2e",
    "/v1/data/risk_order/+.",
    "/v1/data/risk_order/-.",
    "/v1/data/risk_order/%2e0",
    "/v1/data/risk_order/0%2e",
    // A quote cannot be written into OPA's query: its 500.
    "/v1/data/risk_order/%22",
    "/v1/data/a%22b/c",
  ];

  for (const method of ["GET", "POST"]) {
    test(`${method}: ${agreed.length} paths answered alike`, async () => {
      for (const path of agreed) {
        const [ours, theirs] = await Promise.all([
          rawCall(pdp.url, method, path),
          rawCall(opaUrl, method, path),
        ]);
        assert.deepEqual(ours, theirs, `${method} ${path}`);
      }
    });
  }

  /**
   * Where OPA evaluates what the PDP has not compiled, the PDP answers
   * undefined (README, "OPA Data API"): pinned here, with what OPA answers.
   */
  const differences: { path: string; opa: (answer: PathAnswer) => boolean }[] = [
    // The whole data document, every rule evaluated.
    { path: "/v1/data", opa: (a) => typeof a.result === "object" && a.result !== null },
    // A package: its rules' values merged with the operator's data.mcp.extra.
    { path: "/v1/data/mcp", opa: (a) => "extra" in (a.result as Json) },
    { path: "/v1/data/mcp/authz", opa: (a) => "decision" in (a.result as Json) },
    // A rule that is not a compiled entrypoint.
    { path: "/v1/data/mcp/authz/allow", opa: (a) => a.result === false },
    // OPA's type checker knows reasons is an array and refuses the string "1e0".
    { path: "/v1/data/mcp/authz/decision/reasons/1e0", opa: typeError },
    // An escaped dot at the root is data[0] to OPA's type checker.
    { path: "/v1/data/%2e/risk_order", opa: typeError },
    // Bytes that are not UTF-8 do not parse as OPA's query.
    {
      path: "/v1/data/risk_order/%FF",
      opa: (a) => a.status === 500 && String(a.message).includes("failed to parse query"),
    },
    // Go refuses an escape that is none, in plain text.
    { path: "/v1/data/%zz", opa: (a) => a.status === 400 && a.keys.length === 0 },
  ];

  for (const method of ["GET", "POST"]) {
    test(`${method}: the documented differences (the PDP answers undefined)`, async () => {
      for (const { path, opa } of differences) {
        const [ours, theirs] = await Promise.all([
          rawCall(pdp.url, method, path),
          rawCall(opaUrl, method, path),
        ]);
        const expected = method === "POST" ? [] : [];
        assert.deepEqual(
          ours,
          { status: 200, location: null, keys: expected },
          `${method} ${path}`,
        );
        opa(theirs);
      }
    });
  }
});
