/**
 * package.json says what the code does: runtime dependencies are exactly the
 * packages src/ imports (a devDependency imported by src/ would be missing
 * from an install; a dependency nothing imports is installed for nothing),
 * `bin` and `exports` point at the executable and at a library entry that
 * starts nothing when imported.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { repoRoot } from "../support/opa.ts";

const manifest = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as {
  private?: boolean;
  dependencies: Record<string, string>;
  bin: Record<string, string>;
  exports: Record<string, unknown>;
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? sourceFiles(join(dir, entry.name))
      : entry.name.endsWith(".ts")
        ? [join(dir, entry.name)]
        : [],
  );
}

/** The package a bare specifier names: `@scope/name` or `name`, without a subpath. */
function packageOf(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] ?? specifier);
}

test("runtime dependencies are exactly the packages src/ imports", () => {
  const imported = new Set<string>();
  for (const file of sourceFiles(join(repoRoot, "src"))) {
    const text = readFileSync(file, "utf8");
    for (const match of text.matchAll(
      /^\s*(?:import|export)\b[^"]*?\bfrom\s+"([^"]+)"|\bimport\s*\(\s*"([^"]+)"\s*\)|^import\s+"([^"]+)"/gm,
    )) {
      const specifier = match[1] ?? match[2] ?? match[3] ?? "";
      if (specifier.startsWith(".") || specifier.startsWith("node:")) continue;
      imported.add(packageOf(specifier));
    }
  }
  assert.ok(imported.has("express") && imported.has("jose"), [...imported].join());
  assert.deepEqual([...imported].sort(), Object.keys(manifest.dependencies).sort());
});

test("installable: not private, `mcp-pdp` is the executable, `.` the library entry", () => {
  assert.equal(manifest.private, undefined);
  assert.deepEqual(manifest.bin, { "mcp-pdp": "dist/main.js" });
  assert.deepEqual(manifest.exports["."], {
    types: "./dist/index.d.ts",
    import: "./dist/index.js",
  });
  assert.match(readFileSync(join(repoRoot, "src", "main.ts"), "utf8"), /^#!\/usr\/bin\/env node\n/);
});

test("importing the library entry starts nothing: the process ends by itself, buildApp and loadConfig in hand", async () => {
  const entry = join(repoRoot, "src", "index.ts");
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `const m = await import(${JSON.stringify(entry)}); console.log(typeof m.buildApp, typeof m.loadConfig, typeof m.createLogger);`,
    ],
    { cwd: repoRoot, timeout: 20000, env: { PATH: process.env.PATH ?? "" } },
  );
  assert.equal(stdout, "function function function\n");
});
