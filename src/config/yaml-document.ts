import { parse } from "yaml";

/**
 * The one YAML reader (PDP_CONFIG, operator data, a bundle's data.yaml):
 * YAML as a way to write JSON, nothing more. The yaml library also builds
 * Maps, Sets, Dates and byte arrays for tags such as `!!omap`, `!!set`,
 * `!!timestamp` and `!!binary`; a schema reads a Map as an object with no
 * keys, so a tagged section would silently fall back to its defaults (an
 * `ops: !!omap […]` would open /health). Any value that is not plain JSON is
 * refused here, with where it is, and duplicate keys are refused by the
 * parser.
 */
export function parseYamlDocument(text: string): unknown {
  const value: unknown = parse(text, { uniqueKeys: true });
  const where = notPlainJson(value, "");
  if (where !== undefined) {
    throw new Error(
      `${where.path || "(top level)"}: ${where.kind} is not JSON (YAML tags are refused)`,
    );
  }
  return value;
}

function notPlainJson(value: unknown, path: string): { path: string; kind: string } | undefined {
  if (value === null || typeof value === "string" || typeof value === "boolean") return undefined;
  if (typeof value === "number") {
    return Number.isFinite(value) ? undefined : { path, kind: `the number ${String(value)}` };
  }
  if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) {
      const found = notPlainJson(item, `${path}[${String(index)}]`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    for (const [key, item] of Object.entries(value)) {
      const found = notPlainJson(item, path === "" ? key : `${path}.${key}`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  // "[object Map]" → "Map": names what the tag built, whatever its prototype.
  return { path, kind: `a ${Object.prototype.toString.call(value).slice(8, -1)}` };
}
