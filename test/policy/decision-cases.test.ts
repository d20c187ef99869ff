/**
 * Replays the shared decision cases (rego/mcp/authz/cases/*.json, also run by
 * `opa test` against the Rego source) through the compiled bundle, over HTTP,
 * with the PDP's clock frozen at each case's time. Source and compiled policy
 * cannot disagree without one of the two suites failing.
 */
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { postJson, startPdp, type RunningPdp } from "../support/pdp.ts";
import { repoRoot } from "../support/opa.ts";

interface DecisionCase {
  note: string;
  input: {
    subject: { properties?: Record<string, unknown> };
    context?: { time?: { unix_s?: number } } & Record<string, unknown>;
  } & Record<string, unknown>;
  expect: { allow: boolean; reasons: string[]; risk: unknown; obligations: unknown };
}

interface CaseFile {
  profile: "default" | "operator";
  cases: DecisionCase[];
}

const casesDir = join(repoRoot, "rego", "mcp", "authz", "cases");
const profiles: Record<CaseFile["profile"], Record<string, string>> = {
  default: {},
  operator: { PDP_DATA: join(repoRoot, "examples", "operator-data.yaml") },
};

function loadCaseFiles(): [string, CaseFile][] {
  return readdirSync(casesDir)
    .filter((name) => name.endsWith(".json"))
    .sort()
    .flatMap((name) => {
      const parsed = JSON.parse(readFileSync(join(casesDir, name), "utf8")) as Record<
        string,
        CaseFile
      >;
      return Object.entries(parsed);
    });
}

/**
 * The AuthZEN request a PEP would send for a case: the case input without the
 * facts only the PDP sets (time, authentication age, authenticated), which it
 * must recompute. The test PDP runs without caller authentication, so the
 * subject counts as asserted by a trusted gateway.
 */
function requestFor(input: DecisionCase["input"]): unknown {
  const {
    auth_age_s: _age,
    authenticated: _authenticated,
    ...properties
  } = input.subject.properties ?? {};
  const { time: _time, ...context } = input.context ?? {};
  return { ...input, subject: { ...input.subject, properties }, context };
}

const caseFiles = loadCaseFiles();

test("there are shared decision cases for both profiles", () => {
  const used = new Set(caseFiles.map(([, file]) => file.profile));
  assert.deepEqual([...used].sort(), ["default", "operator"]);
  assert.ok(caseFiles.reduce((n, [, file]) => n + file.cases.length, 0) >= 30);
});

for (const [profile, env] of Object.entries(profiles)) {
  describe(`decision cases, ${profile} profile, compiled bundle over HTTP`, () => {
    let now = 0;
    let pdp: RunningPdp;
    before(async () => {
      pdp = await startPdp({ env, clock: () => now });
    });
    after(async () => {
      await pdp.close();
    });

    for (const [group, file] of caseFiles.filter(([, f]) => f.profile === profile)) {
      for (const decisionCase of file.cases) {
        test(`${group}: ${decisionCase.note}`, async () => {
          const unixSeconds = decisionCase.input.context?.time?.unix_s;
          assert.equal(typeof unixSeconds, "number", "every case sets context.time.unix_s");
          now = (unixSeconds as number) * 1000;
          const response = await postJson(
            `${pdp.url}/access/v1/evaluation`,
            requestFor(decisionCase.input),
          );
          assert.equal(response.status, 200);
          const body = response.body as {
            decision: boolean;
            context: { reasons: { code: string }[]; risk: unknown; obligations: unknown };
          };
          assert.deepEqual(
            {
              allow: body.decision,
              reasons: body.context.reasons.map((r) => r.code).sort(),
              risk: body.context.risk,
              obligations: body.context.obligations,
            },
            { ...decisionCase.expect, reasons: [...decisionCase.expect.reasons].sort() },
          );
        });
      }
    }
  });
}
