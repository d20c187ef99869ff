import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

let cachedOpa: string | undefined;

/** The pinned opa CLI (installed by scripts/ensure-opa.sh when missing). */
export function opaPath(): string {
  cachedOpa ??= execFileSync(join(repoRoot, "scripts", "ensure-opa.sh"), {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
  return cachedOpa;
}

/** A scratch directory removed by the returned cleanup function. */
export function scratchDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "mcp-pdp-test-"));
  return {
    dir,
    remove: () => {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Compiles Rego sources with the real `opa build -t wasm` into `<dir>/bundle.tar.gz`
 * and returns its path.
 */
export function buildWasmBundle(
  dir: string,
  sources: Record<string, string>,
  entrypoints: string[],
  extraArgs: string[] = [],
): string {
  const srcDir = join(dir, "src");
  for (const [name, content] of Object.entries(sources)) {
    const file = join(srcDir, name);
    execFileSync("mkdir", ["-p", dirname(file)]);
    writeFileSync(file, content);
  }
  const out = join(dir, "bundle.tar.gz");
  const args = ["build", "-t", "wasm", "-o", out, ...extraArgs];
  for (const entrypoint of entrypoints) args.push("-e", entrypoint);
  execFileSync(opaPath(), [...args, srcDir], { stdio: ["ignore", "ignore", "inherit"] });
  return out;
}
