/**
 * Layers that only point down. Every import in src/ (static, `import type`,
 * `export … from` and dynamic `import()`, read by TypeScript's own
 * pre-processor) is checked against the layer table below: a module may
 * import its own layer and the layers beneath it, never one above. Two
 * bottom-layer rules keep what the PEP library ships small: protocol/ imports
 * only node built-ins, jose and errors.ts; pep/ only protocol/, errors.ts and
 * node built-ins; and nothing of the server imports pep/.
 *
 * Arrows that still run up are listed in `knownUpward`, each with why and who
 * removes it; the test fails as well when a listed arrow is gone, so the list
 * only shrinks.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, test } from "node:test";
import ts from "typescript";
import { repoRoot } from "./support/opa.ts";

/**
 * The layer order, bottom first: a module of layer n may import layers 0…n.
 * A layer is a top-level entry of src/ (a directory, or a file without `.ts`),
 * so `config.ts` and a `config/` directory are the same layer.
 */
const layers: readonly (readonly string[])[] = [
  ["errors"], // the error registry
  ["protocol"], // what the server and the PEP library both speak
  ["net"], // addresses, CIDRs, trusted proxies
  ["config"], // one validated configuration, built from before anything else
  ["policy"], // bundles → a wasm policy ready to evaluate
  ["decision"], // the decision core
  ["auth"], // tokens, the servers registry, the PDP's own callers
  ["observability"], // metrics, decision records, logs; injected into api/
  ["api"], // transport-neutral handlers
  ["http"], // the route table, listeners, express
  ["app"], // the composition root
  ["cli", "index"], // what operators run; the library entry point
  ["main"], // the process
];

/** pep/ is not in the order: it sits beside the server, on protocol/ alone. */
const pepMayImport = new Set(["pep", "protocol", "errors"]);
/** Packages (beyond node built-ins) a layer may import when its closure must stay small. */
const packagesAllowed: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  ["protocol", new Set(["jose"])],
  ["pep", new Set<string>()],
]);

/**
 * Upward arrows that remain, as "from -> to" (paths under src/), each with
 * why. Remove an entry when its arrow goes; never add one to make a new
 * import pass.
 */
const knownUpward: ReadonlyMap<string, string> = new Map<string, string>([]);

interface Import {
  /** The importing file, relative to src/. */
  from: string;
  /** The imported file relative to src/ (with `.ts`), or a package name. */
  to: string;
  relativeImport: boolean;
}

/** The layer of a path under src/: its first segment, without `.ts`. */
function layerOf(path: string): string {
  const [first = ""] = path.split("/");
  return first.replace(/\.ts$/, "");
}

function rankOf(layer: string): number | undefined {
  const rank = layers.findIndex((names) => names.includes(layer));
  return rank === -1 ? undefined : rank;
}

/** The package an import specifier names (`@scope/name/sub` → `@scope/name`). */
function packageOf(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] ?? specifier);
}

/** Why an import breaks the layering, or undefined when it does not. */
function violationOf(edge: Import): string | undefined {
  const from = layerOf(edge.from);
  if (!edge.relativeImport) {
    if (edge.to.startsWith("node:")) return undefined;
    const allowed = packagesAllowed.get(from);
    if (allowed === undefined || allowed.has(packageOf(edge.to))) return undefined;
    return `${from}/ may import no package but ${[...allowed].join(", ") || "node built-ins"}`;
  }
  const to = layerOf(edge.to);
  if (from === "pep" || to === "pep") {
    if (from === "pep" && pepMayImport.has(to)) return undefined;
    return from === "pep"
      ? `pep/ imports only ${[...pepMayImport].join(", ")}`
      : "the server does not import the PEP library";
  }
  const fromRank = rankOf(from);
  const toRank = rankOf(to);
  if (fromRank === undefined) return `src/${from} has no layer in the table`;
  if (toRank === undefined) return `src/${to} has no layer in the table`;
  return toRank > fromRank
    ? `${from} (layer ${fromRank}) imports up into ${to} (layer ${toRank})`
    : undefined;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

/** Every import of every file under `srcDir`. */
function importsOf(srcDir: string): Import[] {
  return sourceFiles(srcDir).flatMap((file) => {
    const info = ts.preProcessFile(readFileSync(file, "utf8"), true, true);
    const from = relative(srcDir, file);
    return info.importedFiles.map(({ fileName }) => {
      if (!fileName.startsWith(".")) return { from, to: fileName, relativeImport: false };
      const target = resolve(dirname(file), fileName).replace(/\.js$/, ".ts");
      return { from, to: relative(srcDir, target), relativeImport: true };
    });
  });
}

const srcDir = join(repoRoot, "src");

describe("layers only point down", () => {
  const imports = importsOf(srcDir);

  test("the source tree was read (imports found in every layer)", () => {
    assert.ok(imports.length > 100, `only ${imports.length} imports found`);
    for (const layer of ["protocol", "pep", "api", "http", "decision"]) {
      assert.ok(
        imports.some((edge) => layerOf(edge.from) === layer),
        `no imports read from src/${layer}`,
      );
    }
  });

  test("no import runs up, besides the listed ones", () => {
    const upward = imports.flatMap((edge) => {
      const why = violationOf(edge);
      const key = `${edge.from} -> ${edge.to}`;
      return why === undefined || knownUpward.has(key) ? [] : [`${key}: ${why}`];
    });
    assert.deepEqual(upward, []);
  });

  test("every listed upward arrow still exists and still runs up (the list only shrinks)", () => {
    const present = new Set(
      imports
        .filter((edge) => violationOf(edge) !== undefined)
        .map((edge) => `${edge.from} -> ${edge.to}`),
    );
    assert.deepEqual(
      [...knownUpward.keys()].filter((key) => !present.has(key)),
      [],
    );
  });
});

describe("the layer rules themselves", () => {
  const edge = (from: string, to: string): Import => ({ from, to, relativeImport: true });

  test("down and sideways are fine; up is not", () => {
    assert.equal(violationOf(edge("api/authzen-api.ts", "decision/decision.ts")), undefined);
    assert.equal(violationOf(edge("api/authzen-api.ts", "api/api-types.ts")), undefined);
    assert.equal(violationOf(edge("config.ts", "errors.ts")), undefined);
    assert.match(violationOf(edge("protocol/json-body.ts", "api/api-types.ts")) ?? "", /up/);
    assert.match(violationOf(edge("decision/decision.ts", "observability/x.ts")) ?? "", /up/);
    assert.match(violationOf(edge("auth/x.ts", "http/y.ts")) ?? "", /up/);
  });

  test("pep/ stands on protocol/ and errors.ts alone, and the server never imports it", () => {
    assert.equal(violationOf(edge("pep/middleware.ts", "protocol/bearer.ts")), undefined);
    assert.equal(violationOf(edge("pep/middleware.ts", "errors.ts")), undefined);
    assert.ok(violationOf(edge("pep/middleware.ts", "net/client-address.ts")) !== undefined);
    assert.ok(violationOf(edge("pep/middleware.ts", "auth/servers.ts")) !== undefined);
    assert.ok(violationOf(edge("app.ts", "pep/index.ts")) !== undefined);
  });

  test("protocol/ and pep/ import no package but the allowed ones", () => {
    const pkg = (from: string, to: string): Import => ({ from, to, relativeImport: false });
    assert.equal(violationOf(pkg("protocol/x.ts", "node:crypto")), undefined);
    assert.equal(violationOf(pkg("protocol/x.ts", "jose")), undefined);
    assert.ok(violationOf(pkg("protocol/x.ts", "express")) !== undefined);
    assert.ok(violationOf(pkg("pep/x.ts", "jose")) !== undefined);
    assert.ok(violationOf(pkg("pep/x.ts", "@modelcontextprotocol/sdk/server")) !== undefined);
    assert.equal(violationOf(pkg("api/x.ts", "zod")), undefined);
  });

  test("a new top-level module must be given a layer", () => {
    assert.match(violationOf(edge("plugins/x.ts", "errors.ts")) ?? "", /no layer/);
    assert.match(violationOf(edge("api/x.ts", "plugins/y.ts")) ?? "", /no layer/);
  });
});

describe("ARCHITECTURE.md", () => {
  const moduleMap = readFileSync(join(repoRoot, "ARCHITECTURE.md"), "utf8");

  test("its module map names every module of src/ and every layer of the table", () => {
    const unnamed = sourceFiles(srcDir)
      .map((file) => relative(srcDir, file).split("\\").join("/"))
      .filter((path) => {
        // Named under its directory: `protocol/mcp/answers.ts` appears as `mcp/answers.ts`.
        const [, ...rest] = path.split("/");
        return !moduleMap.includes(rest.length > 1 ? rest.join("/") : (rest[0] ?? path));
      });
    assert.deepEqual(unnamed, []);
    const missingLayers = layers
      .flat()
      .filter((layer) => !moduleMap.includes(`${layer}/`) && !moduleMap.includes(`${layer}.ts`));
    assert.deepEqual(missingLayers, []);
  });
});
