/**
 * The error registry (src/errors.ts) and the README agree: every code in the
 * one code → status map appears in a README error table (a table right after
 * an `error-codes` marker) with that status, exactly once, and those tables
 * hold nothing else. Every error class derives from the one base.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  ApiError,
  apiErrorStatus,
  errorStatus,
  EvaluationError,
  PdpError,
  StartupError,
  tokenErrorCodes,
  tokenErrorStatus,
  TokenError,
} from "../src/errors.ts";
import { McpRefusal } from "../src/protocol/mcp/request-reader.ts";
import { PdpUnavailableError } from "../src/pep/pdp-client.ts";

const readme = readFileSync(
  join(fileURLToPath(new URL("..", import.meta.url)), "README.md"),
  "utf8",
);
const marker = "<!-- error-codes:";

/** The `| status | code | when |` rows of every table that follows a marker. */
function documentedRows(): { status: number; code: string }[] {
  const lines = readme.split("\n");
  const rows: { status: number; code: string }[] = [];
  for (const [index, line] of lines.entries()) {
    if (!line.startsWith(marker)) continue;
    let at = index + 1;
    while (lines[at]?.trim() === "") at += 1;
    assert.match(
      lines[at] ?? "",
      /^\| status +\| code +\| when +\|$/,
      `table header after line ${index + 1}`,
    );
    assert.match(lines[at + 1] ?? "", /^\|[- |]+\|$/, `table separator after line ${index + 1}`);
    for (at += 2; lines[at]?.startsWith("|") === true; at += 1) {
      const match = /^\| (\d{3}) +\| `([a-z0-9_]+)` +\|/.exec(lines[at] ?? "");
      assert.ok(match, `README line ${at + 1} is not "| status | \`code\` | when |"`);
      rows.push({ status: Number(match[1]), code: match[2] ?? "" });
    }
  }
  return rows;
}

describe("the README's error tables are the registry's", () => {
  const rows = documentedRows();

  test("the marked tables are found and not empty", () => {
    assert.ok(readme.split(marker).length - 1 >= 2, "at least the API and token tables are marked");
    assert.ok(rows.length > 0);
  });

  test("every code of errorStatus is documented with its status, once", () => {
    for (const [code, status] of Object.entries(errorStatus)) {
      const documented = rows.filter((row) => row.code === code);
      assert.equal(documented.length, 1, `${code} appears ${documented.length} times`);
      assert.equal(documented[0]?.status, status, `${code}'s status`);
    }
  });

  test("nothing else is in the tables", () => {
    const known = new Set(Object.keys(errorStatus));
    assert.deepEqual(
      rows.filter((row) => !known.has(row.code)).map((row) => row.code),
      [],
    );
  });
});

describe("one base class, narrowable by code", () => {
  test("every error class derives from PdpError and keeps its code and name", () => {
    const errors: [PdpError, string, string][] = [
      [new ApiError("invalid_json", "m"), "ApiError", "invalid_json"],
      [new StartupError("config_invalid", ["a", "b"]), "StartupError", "config_invalid"],
      [new EvaluationError("policy_undefined", "m"), "EvaluationError", "policy_undefined"],
      [new TokenError("token_expired", "m"), "TokenError", "token_expired"],
      [new McpRefusal("mcp_header_mismatch", "m", 1), "McpRefusal", "mcp_header_mismatch"],
      [new PdpUnavailableError("pdp_timeout", "m"), "PdpUnavailableError", "pdp_timeout"],
    ];
    for (const [error, name, code] of errors) {
      assert.ok(error instanceof PdpError, name);
      assert.ok(error instanceof Error, name);
      assert.equal(error.name, name);
      assert.equal(error.code, code);
    }
  });

  test("an ApiError's status is its code's in the one map", () => {
    for (const code of Object.keys(apiErrorStatus) as (keyof typeof apiErrorStatus)[]) {
      assert.equal(new ApiError(code, "m").status, errorStatus[code], code);
    }
  });

  test("token codes are the registry's, in its order", () => {
    assert.deepEqual(tokenErrorCodes, Object.keys(tokenErrorStatus));
    assert.equal(errorStatus.server_unknown, 403, "no token would help: 403, not 401");
    assert.equal(errorStatus.token_expired, 401);
  });

  test("a StartupError names every problem", () => {
    const error = new StartupError("config_invalid", ["PDP_PORT: not a number", "servers: empty"]);
    assert.deepEqual(error.problems, ["PDP_PORT: not a number", "servers: empty"]);
    assert.equal(error.message, "config_invalid: PDP_PORT: not a number; servers: empty");
  });
});
