import assert from "node:assert/strict";
import { test } from "node:test";
import { readPolicyAnswer } from "../../src/decision/result-reader.js";
import { EvaluationError } from "../../src/errors.js";

test("booleans are decisions; false carries policy_denied", () => {
  assert.equal(readPolicyAnswer(true).allow, true);
  assert.deepEqual(readPolicyAnswer(true).reasons, []);
  assert.deepEqual(
    readPolicyAnswer(false).reasons.map((r) => r.code),
    ["policy_denied"],
  );
});

test("documents pass allow, reasons, risk and obligations through", () => {
  const answer = readPolicyAnswer({
    allow: false,
    reasons: ["plain_code", { code: "rich", admin: "a", user: "u" }, { code: "msg", message: "m" }],
    risk: { class: "write" },
    obligations: { step_up: { scopes: ["x"] } },
  });
  assert.equal(answer.allow, false);
  assert.deepEqual(answer.reasons, [
    { code: "plain_code", admin: "plain_code", user: "Access denied." },
    { code: "rich", admin: "a", user: "u" },
    { code: "msg", admin: "m", user: "Access denied." },
  ]);
  assert.deepEqual(answer.risk, { class: "write" });
  assert.deepEqual(answer.obligations, { step_up: { scopes: ["x"] } });
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
