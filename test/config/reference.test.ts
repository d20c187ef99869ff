/**
 * The README's configuration reference is the schema's: every key, type,
 * default and variable. Adding a key without regenerating the README fails.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { environmentKeys } from "../../src/config/index.ts";
import { readmePath, readmeWithReference } from "../../scripts/config-reference.ts";

test("README.md's configuration reference matches the schema (node scripts/config-reference.ts write)", async () => {
  const readme = readFileSync(readmePath, "utf8");
  assert.equal(readme, await readmeWithReference(readme));
});

test("every environment variable appears in the reference beside the key it overrides", () => {
  const readme = readFileSync(readmePath, "utf8");
  for (const [variable, key] of Object.entries(environmentKeys)) {
    assert.match(
      readme,
      new RegExp(`\\| \`${key.join("\\.")}\` +\\|[^\\n]*\\| \`${variable}\` +\\|`),
      variable,
    );
  }
});
