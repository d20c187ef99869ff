/**
 * Policy toolchain: `build` compiles rego/ into the committed OPA bundle,
 * `check` proves the committed bundle matches rego/, `test` runs opa fmt,
 * opa check --strict and opa test with a coverage floor.
 *
 * Usage: node scripts/policy.ts build|check|test|--help
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const regoDir = join(root, "rego");
const committedBundle = join(root, "bundle", "bundle.tar.gz");
const operatorFixture = join(root, "examples", "operator-data.yaml");
const entrypoints = [
  "mcp/authz/decision",
  "mcp/authz/config_errors",
  // The search APIs' candidates (rego/mcp/authz/search.rego); the PDP decides each one.
  "mcp/authz/search_resource",
  "mcp/authz/search_action",
  "mcp/authz/search_subject",
];
const coverageFloor = 95;

function opaPath(): string {
  return execFileSync(join(root, "scripts", "ensure-opa.sh"), {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
}

function run(opa: string, args: string[], capture = false): string {
  return execFileSync(opa, args, {
    cwd: root,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    stdio: ["ignore", capture ? "pipe" : "inherit", "inherit"],
  });
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? walk(join(dir, entry.name)) : [join(dir, entry.name)],
  );
}

/** Files that go into the bundle: policy and data, never tests or test cases. */
function bundleSources(): string[] {
  return walk(regoDir)
    .filter((file) => !file.endsWith("_test.rego"))
    .filter((file) => !relative(regoDir, file).split("/").includes("cases"))
    .sort();
}

/** The revision is a hash of the sources, so rebuilding unchanged sources is byte-identical. */
function revision(): string {
  const hash = createHash("sha256");
  for (const file of bundleSources()) {
    hash.update(relative(regoDir, file)).update("\0").update(readFileSync(file)).update("\0");
  }
  return `sha256-${hash.digest("hex").slice(0, 16)}`;
}

/**
 * OPA's capabilities narrowed to the builtins @open-policy-agent/opa-wasm can
 * run, so a policy using anything else fails at compile time, not at request time.
 */
function writeCapabilities(opa: string, dir: string): string {
  const current = JSON.parse(run(opa, ["capabilities", "--current"], true)) as {
    builtins: { name: string }[];
  };
  const sdkCapabilities = join(
    dirname(createRequire(import.meta.url).resolve("@open-policy-agent/opa-wasm")),
    "..",
    "capabilities.json",
  );
  const sdk = JSON.parse(readFileSync(sdkCapabilities, "utf8")) as { builtins: { name: string }[] };
  const supported = new Set(sdk.builtins.map((b) => b.name));
  current.builtins = current.builtins.filter((b) => supported.has(b.name));
  const file = join(dir, "capabilities.json");
  writeFileSync(file, JSON.stringify(current));
  return file;
}

function build(opa: string, out: string): void {
  const scratch = mkdtempSync(join(tmpdir(), "mcp-pdp-policy-"));
  try {
    const args = ["build", "-t", "wasm", "-o", out, "--revision", revision()];
    args.push("--capabilities", writeCapabilities(opa, scratch));
    args.push("--ignore", "*_test.rego", "--ignore", "cases");
    for (const entrypoint of entrypoints) args.push("-e", entrypoint);
    run(opa, [...args, "rego"]);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

function check(opa: string): void {
  const scratch = mkdtempSync(join(tmpdir(), "mcp-pdp-policy-"));
  try {
    const rebuilt = join(scratch, "bundle.tar.gz");
    build(opa, rebuilt);
    if (!readFileSync(rebuilt).equals(readFileSync(committedBundle))) {
      console.error(
        "bundle/bundle.tar.gz does not match rego/: run `npm run policy:build` and commit the result",
      );
      process.exit(1);
    }
    console.log(`bundle/bundle.tar.gz matches rego/ (revision ${revision()})`);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

interface CoverageReport {
  files: Record<string, { covered_lines?: number; not_covered_lines?: number }>;
}

function test(opa: string): void {
  run(opa, ["fmt", "--fail", "--list", "rego"]);
  run(opa, ["check", "--strict", "rego"]);
  const fixture = `fixtures.operator:${relative(root, operatorFixture)}`;
  run(opa, ["test", "rego", fixture]);
  const report = JSON.parse(
    run(opa, ["test", "--coverage", "rego", fixture], true),
  ) as CoverageReport;
  let covered = 0;
  let total = 0;
  for (const [file, stats] of Object.entries(report.files)) {
    if (file.endsWith("_test.rego")) continue;
    const fileCovered = stats.covered_lines ?? 0;
    const fileTotal = fileCovered + (stats.not_covered_lines ?? 0);
    covered += fileCovered;
    total += fileTotal;
    console.log(`coverage ${file}: ${fileCovered}/${fileTotal} lines`);
  }
  const percent = total === 0 ? 0 : (100 * covered) / total;
  console.log(`coverage of the default policy: ${percent.toFixed(1)}% (floor ${coverageFloor}%)`);
  if (percent < coverageFloor) process.exit(1);
}

const usage = `usage: node scripts/policy.ts build|check|test

  build   compile rego/ into bundle/bundle.tar.gz (commit it)
  check   fail if bundle/bundle.tar.gz does not match rego/
  test    opa fmt --fail, opa check --strict, opa test with a ${coverageFloor} % coverage floor

Each command needs the pinned opa; scripts/ensure-opa.sh installs it when it is missing.`;

const command = process.argv[2];
// Arguments first: asking for help, or a typo, must not install opa (`go install`) first.
if (command === "--help" || command === "-h" || command === "help") {
  console.log(usage);
  process.exit(0);
}
if (command !== "build" && command !== "check" && command !== "test") {
  console.error(usage);
  process.exit(2);
}
const opa = opaPath();
switch (command) {
  case "build":
    build(opa, committedBundle);
    console.log(`wrote bundle/bundle.tar.gz (revision ${revision()})`);
    break;
  case "check":
    check(opa);
    break;
  case "test":
    test(opa);
    break;
}
