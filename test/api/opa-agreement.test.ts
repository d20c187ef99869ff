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
 */
import assert from "node:assert/strict";
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "../support/ports.js";
import { opaPath, repoRoot, scratchDir } from "../support/opa.js";
import { startPdp, type RunningPdp } from "../support/pdp.js";

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

const scratch = scratchDir();
let pdp: RunningPdp;
let opaServer: ChildProcess | undefined;
let opaUrl = "";

before(async () => {
  pdp = await startPdp();
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
