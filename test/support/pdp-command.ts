/**
 * How tests start the real `mcp-pdp` executable: the node arguments that run
 * it, for `spawn(process.execPath, pdpArgs(...))`.
 *
 * `npm test` builds dist/ before the tests, and then every PDP a test spawns
 * runs dist/main.js: what `npm start` and the installed `mcp-pdp` bin run.
 * That also spares each process, and each of its worker threads, stripping
 * the types of every module again (0.73 s of CPU to a decision from src/,
 * 0.50 s from dist/, measured on the CI machine), across the suite's ~100
 * spawned PDPs. A test run on its own after a change to src/ that was not
 * built falls back to src/main.ts (Node.js strips its types), so no test ever
 * runs code older than the source.
 */
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./opa.ts";

const builtEntry = join(repoRoot, "dist", "main.js");
const sourceEntry = join(repoRoot, "src", "main.ts");

/** The newest modification time of the files under `dir`, in ms. */
function newestMtimeMs(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    newest = Math.max(newest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return newest;
}

let cachedBuildIsCurrent: boolean | undefined;

/** Whether dist/ was built after the last change to src/ (looked at once per test process). */
export function buildIsCurrent(): boolean {
  if (cachedBuildIsCurrent === undefined) {
    let builtMs = 0;
    try {
      builtMs = statSync(builtEntry).mtimeMs;
    } catch {
      // Not built: the source it is.
    }
    cachedBuildIsCurrent = builtMs > 0 && builtMs >= newestMtimeMs(join(repoRoot, "src"));
  }
  return cachedBuildIsCurrent;
}

/**
 * The node arguments that run the PDP with `args` as its command line;
 * `nodeArgs` (e.g. `--max-old-space-size=64`) go before the script.
 */
export function pdpArgs(args: readonly string[] = [], nodeArgs: readonly string[] = []): string[] {
  const entry = buildIsCurrent() ? [builtEntry] : [sourceEntry];
  return [...nodeArgs, ...entry, ...args];
}

/** `words` quoted for a POSIX shell script (for the stand-ins of `npm` and `npx`). */
export function shellWords(words: readonly string[]): string {
  return words.map((word) => `'${word.replaceAll("'", "'\\''")}'`).join(" ");
}
