/**
 * The metrics module keeps every label set bounded, whatever values arrive:
 * a unit test of Metrics, with the label values the default bundle names
 * (rego/data.json, read by policyLabels) and the PDP's own reason codes.
 * 2 × 10 000 decisions, HTTP requests, token verifications, JWKS fetches and
 * caller failures with ever new tools, servers, clients, methods, reasons,
 * risk classes, issuers and routes add no series after the first round.
 * test/observability/metrics.test.ts has the HTTP smoke test of the same.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { Metrics, type RouteLabel } from "../../src/observability/metrics.ts";
import { pdpReasonCodes, policyLabels } from "../../src/observability/observability.ts";
import { repoRoot } from "../support/opa.ts";
import {
  declaredFamilies,
  labelValues,
  parseExposition,
  seriesPerFamily,
  total,
  type Exposition,
} from "./helpers.ts";

const defaultData = JSON.parse(readFileSync(join(repoRoot, "rego", "data.json"), "utf8")) as Record<
  string,
  unknown
>;
const labels = policyLabels(defaultData);
const perRound = 10_000;

function metricsForTheDefaultBundle(): Metrics {
  const metrics = new Metrics({
    riskClasses: labels.riskClasses,
    reasonCodes: [...pdpReasonCodes, ...labels.reasonCodes],
    actions: labels.actions,
    toolLabels: ["files/read_file"],
    clientLabels: ["client-a"],
    processMetrics: false,
  });
  metrics.registerIssuer("https://idp.example.com");
  return metrics;
}

/** One round of samples whose every free-form value is new; shape i % 10 picks the known ones. */
function feed(metrics: Metrics, round: number): void {
  const routes: RouteLabel[] = ["evaluation", "forward_auth", "opa_data", "other"];
  for (let i = 0; i < perRound; i += 1) {
    const name = `${round}-${i}`;
    const shape = i % 10;
    metrics.recordDecision({
      allow: shape < 5,
      action: shape === 1 ? `x/${name}` : shape === 2 ? "tools/list" : "tools/call",
      risk: shape === 7 ? `class-${name}` : shape === 8 ? undefined : "read",
      reasons: shape < 5 ? [] : ["scope_missing", `reason-${name}`, "token_expired"],
      tool: shape === 0 ? "files/read_file" : `srv-${name}/tool-${name}`,
      clientId: shape === 3 ? "client-a" : `client-${name}`,
      evaluationSeconds: 0.00002,
    });
    metrics.recordHttp(
      routes[i % routes.length] ?? "other",
      shape === 9 ? `M${name}` : "POST",
      [200, 400, 401, 403][i % 4] ?? 500,
      0.001,
    );
    metrics.recordTokenVerification(shape === 4 ? `token_${name}` : "valid");
    metrics.recordJwksFetch(
      shape === 6 ? `https://${name}.example.com` : "https://idp.example.com",
      shape !== 6,
    );
    metrics.recordCallerAuthFailure(i % 2 === 0 ? "unauthenticated" : "forbidden");
  }
}

async function exposition(metrics: Metrics): Promise<Exposition> {
  return parseExposition(await metrics.registry.metrics());
}

describe("bounded cardinality of the metrics module: 2 × 10 000 distinct values", () => {
  const metrics = metricsForTheDefaultBundle();
  let first: Exposition;
  let second: Exposition;

  before(async () => {
    feed(metrics, 1);
    first = await exposition(metrics);
    feed(metrics, 2);
    second = await exposition(metrics);
  });

  test("the default bundle names its label values (rego/data.json metric_labels)", () => {
    assert.ok(labels.reasonCodes.includes("scope_missing"));
    assert.ok(labels.actions.includes("tools/call"));
    assert.deepEqual(labels.riskClasses, ["read", "write", "destructive"]);
  });

  test("every label takes only allow-listed values or `other`", () => {
    const allowed: Record<string, Record<string, ReadonlySet<string>>> = {
      mcp_pdp_decisions_total: {
        outcome: new Set(["allow", "deny"]),
        risk: new Set([...labels.riskClasses, "none", "other"]),
        action: new Set([...labels.actions, "other"]),
      },
      mcp_pdp_decision_reasons_total: {
        reason: new Set([...pdpReasonCodes, ...labels.reasonCodes, "other"]),
      },
      mcp_pdp_tool_decisions_total: { tool: new Set(["files/read_file", "other"]) },
      mcp_pdp_client_decisions_total: { client: new Set(["client-a", "other"]) },
      mcp_pdp_http_requests_total: {
        method: new Set(["POST", "other"]),
        status: new Set(["200", "400", "401", "403"]),
      },
      mcp_pdp_token_verifications_total: { result: new Set(["valid", "other"]) },
      mcp_pdp_jwks_fetches_total: { issuer: new Set(["https://idp.example.com", "other"]) },
    };
    for (const [name, byLabel] of Object.entries(allowed)) {
      for (const [label, values] of Object.entries(byLabel)) {
        const seen = labelValues(second, name, label);
        assert.ok(seen.size > 0, `${name}{${label}} was recorded`);
        const stray = [...seen].filter((value) => !values.has(value));
        assert.deepEqual(stray, [], `${name}{${label}} took values outside its allow-list`);
      }
    }
    // The folded values are really there: a hostile value is counted, as `other`.
    assert.equal(
      total(second, "mcp_pdp_decisions_total", { action: "other" }),
      (2 * perRound) / 10,
    );
    assert.equal(
      total(second, "mcp_pdp_decision_reasons_total", { reason: "other" }),
      perRound,
      "one made-up reason per denied decision",
    );
  });

  test("every decision is counted; the second round adds no series", () => {
    assert.equal(total(first, "mcp_pdp_decisions_total"), perRound);
    assert.equal(total(second, "mcp_pdp_decisions_total"), 2 * perRound);
    const families = declaredFamilies();
    const seriesOf = (exposed: Exposition) => {
      const counts = seriesPerFamily(exposed);
      return Object.fromEntries(families.map((family) => [family, counts.get(family) ?? 0]));
    };
    assert.deepEqual(seriesOf(second), seriesOf(first));
    const series = second.samples.length;
    assert.ok(series < 300, `${series} series after 20 000 decisions`);
  });
});
