import assert from "node:assert/strict";
import { test } from "node:test";
import { readPolicyAnswer } from "../../src/decision/result-reader.ts";
import { EvaluationError } from "../../src/errors.ts";

test("booleans are decisions; false carries policy_denied", () => {
  assert.equal(readPolicyAnswer(true).allow, true);
  assert.deepEqual(readPolicyAnswer(true).reasons, []);
  assert.deepEqual(
    readPolicyAnswer(false).reasons.map((r) => r.code),
    ["policy_denied"],
  );
});

test("documents pass allow, reasons, risk and obligations through, typed", () => {
  const answer = readPolicyAnswer({
    allow: false,
    reasons: ["plain_code", { code: "rich", admin: "a", user: "u" }, { code: "msg", message: "m" }],
    risk: { class: "write" },
    obligations: { step_up: { scopes: ["x"] }, notify: "audit" },
  });
  assert.equal(answer.allow, false);
  assert.deepEqual(answer.reasons, [
    { code: "plain_code", admin: "plain_code", user: "Access denied." },
    { code: "rich", admin: "a", user: "u" },
    { code: "msg", admin: "m", user: "Access denied." },
  ]);
  assert.deepEqual(answer.risk, { class: "write", source: null });
  // Obligations reach clients as answered; step_up is also read once into its typed form.
  assert.deepEqual(answer.obligations, { step_up: { scopes: ["x"] }, notify: "audit" });
  assert.deepEqual(answer.stepUp, { scopes: ["x"], acrValues: [], maxAge: undefined });
});

test("risk is {class, source} or null", () => {
  const read = (risk: unknown) => readPolicyAnswer({ allow: true, risk }).risk;
  assert.deepEqual(read({ class: "destructive", source: "catalog" }), {
    class: "destructive",
    source: "catalog",
  });
  assert.deepEqual(read({ class: "read", source: "method", extra: 1 }), {
    class: "read",
    source: "method",
  });
  assert.equal(read(null), null);
  assert.equal(read(undefined), null);
  assert.equal(readPolicyAnswer(true).risk, null);
});

test("the step-up obligation: every field typed, absent fields empty", () => {
  const stepUp = (step_up: unknown) =>
    readPolicyAnswer({ allow: false, obligations: { step_up } }).stepUp;
  assert.deepEqual(stepUp({ scopes: ["mcp:admin"], acr_values: ["mfa"], max_age: 900 }), {
    scopes: ["mcp:admin"],
    acrValues: ["mfa"],
    maxAge: 900,
  });
  assert.deepEqual(stepUp({ max_age: 86400 }), { scopes: [], acrValues: [], maxAge: 86400 });
  assert.equal(readPolicyAnswer({ allow: false, obligations: {} }).stepUp, undefined);
  assert.equal(stepUp(null), undefined);
  assert.equal(readPolicyAnswer({ allow: false }).stepUp, undefined);
  assert.equal(readPolicyAnswer(false).stepUp, undefined);
});

test("a deny without reasons still says why", () => {
  assert.deepEqual(
    readPolicyAnswer({ allow: false }).reasons.map((r) => r.code),
    ["policy_denied"],
  );
});

const invalidAnswers: [string, unknown][] = [
  ["a string", "true"],
  ["a number", 1],
  ["null", null],
  ["an array", [true]],
  ["allow as a string", { allow: "true" }],
  ["allow missing", { reasons: [] }],
  ["reasons not a list", { allow: false, reasons: "nope" }],
  ["a reason without a code", { allow: false, reasons: [{ admin: "x" }] }],
  ["obligations as a list", { allow: true, obligations: [] }],
  ["risk as a string", { allow: true, risk: "write" }],
  ["risk without a class", { allow: true, risk: { source: "catalog" } }],
  ["risk with a numeric class", { allow: true, risk: { class: 2 } }],
  ["risk with a numeric source", { allow: true, risk: { class: "read", source: 1 } }],
  ["step_up as a list", { allow: false, obligations: { step_up: ["mcp:admin"] } }],
  [
    "step_up scopes as a string",
    { allow: false, obligations: { step_up: { scopes: "mcp:admin" } } },
  ],
  [
    "step_up acr_values with a number",
    { allow: false, obligations: { step_up: { acr_values: [1] } } },
  ],
  ["step_up max_age as a string", { allow: false, obligations: { step_up: { max_age: "900" } } }],
  // Values WWW-Authenticate could only carry altered (attack 9): refused, not rewritten.
  ["step_up max_age 1e300", { allow: false, obligations: { step_up: { max_age: 1e300 } } }],
  ["step_up max_age negative", { allow: false, obligations: { step_up: { max_age: -1.5 } } }],
  ["step_up max_age fractional", { allow: false, obligations: { step_up: { max_age: 0.5 } } }],
  [
    "step_up scope with a quote and CRLF",
    { allow: false, obligations: { step_up: { scopes: ['a"\r\nSet-Cookie: x=1'] } } },
  ],
  ["step_up scope with a space", { allow: false, obligations: { step_up: { scopes: ["a b"] } } }],
  [
    "step_up scope with a backslash",
    { allow: false, obligations: { step_up: { scopes: ["b\\c"] } } },
  ],
  ["step_up empty scope", { allow: false, obligations: { step_up: { scopes: [""] } } }],
  [
    "step_up acr value with a quote",
    { allow: false, obligations: { step_up: { acr_values: ['x"'] } } },
  ],
];

for (const [label, value] of invalidAnswers) {
  test(`${label} is policy_result_invalid, never an allow`, () => {
    assert.throws(
      () => readPolicyAnswer(value),
      (error: unknown) =>
        error instanceof EvaluationError && error.code === "policy_result_invalid",
    );
  });
}
