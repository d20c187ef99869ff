import type { EvaluationOutcome } from "../policy/wasm-policy.ts";

/**
 * A Data API path as OPA (v1.22, measured with `opa run --server`, see
 * test/api/opa-agreement.test.ts) reads it: where it redirects, and how each
 * segment names a key or an index.
 */
export type OpaDataPath =
  /** A non-canonical spelling OPA redirects: `location` is where to (a path, with or without the query). */
  | { kind: "redirect"; status: 301 | 307; location: string }
  /** A canonical path: its segments, percent-decoded, each as OPA reads it. */
  | { kind: "document"; segments: PathSegment[] };

/**
 * One segment: its text (percent-decoded) and, where OPA reads it as a
 * number, that integer. OPA turns a segment Go's `strconv.Atoi` accepts
 * (`0`, `00`, `+0`, `-0`, `01`) into a number, and so, it answers, a plain
 * decimal with a fraction of zeros (`1.0`, `1.`, `.0`, `00.00`, `.`); a number
 * indexes an array and names the object key of its canonical spelling
 * (`00` finds `"0"`, `1.0` finds `"1"`). Anything else (`1e0`, `1.5`,
 * `0x1`) stays a string: an object key as written, never an array index.
 */
export interface PathSegment {
  text: string;
  integer: bigint | undefined;
}

/**
 * Reads the path after `prefix` (the route table sends only `prefix` and
 * what lies below it). Go's router redirects first: a path with an empty,
 * `.` or `..` segment to its cleaned form with 307 (the query kept), then a
 * trailing slash (a literal one or `%2F`) to the path without it with 301
 * (the query dropped), as OPA answers.
 */
export function readOpaDataPath(
  path: string,
  query: string | undefined,
  prefix: string,
): OpaDataPath {
  const rest = path.slice(prefix.length);
  const raw = rest === "" ? [] : rest.slice(1).split("/");
  const inner = raw.slice(0, -1);
  const last = raw.at(-1);
  if (
    inner.some((segment) => segment === "" || segment === "." || segment === "..") ||
    last === "." ||
    last === ".."
  ) {
    const suffix = query === undefined ? "" : `?${query}`;
    return { kind: "redirect", status: 307, location: `${cleaned(prefix, raw)}${suffix}` };
  }
  if (last === "" || (last !== undefined && /%2f$/i.test(last))) {
    const kept = [prefix, ...(last === "" ? inner : [...inner, last.slice(0, -3)])].join("/");
    return { kind: "redirect", status: 301, location: headerSafe(decoded(kept), kept) };
  }
  return { kind: "document", segments: raw.map(segmentOf) };
}

/** Go's cleaned path of `prefix/segments…` (ServeMux's cleanPath: path.Clean, a trailing slash kept). */
function cleaned(prefix: string, segments: readonly string[]): string {
  const kept = prefix.split("/").filter((segment) => segment !== "");
  for (const segment of segments) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") {
      if (kept.length > 0) kept.pop();
      continue;
    }
    kept.push(segment);
  }
  // `..` may climb above the prefix: Go cleans the whole path alike, and
  // puts back a trailing slash (the 301 that follows takes it away).
  const trailing = segments.length > 0 && segments.at(-1) === "" && kept.length > 0;
  return `/${kept.join("/")}${trailing ? "/" : ""}`;
}

/**
 * OPA's 301 names the path percent-decoded (`tools%2Flist/` goes to
 * `tools/list`, a different document: OPA's answer, kept). A decoded path
 * that a header cannot carry as it is (controls, beyond ASCII) stays escaped.
 */
function headerSafe(location: string, escaped: string): string {
  return /^[\x20-\x7e]*$/.test(location) ? location : escaped;
}

function decoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** A segment percent-decoded; one that is not percent-encoded UTF-8 stays as it is. */
function segmentOf(raw: string): PathSegment {
  const text = decoded(raw);
  return { text, integer: integerOf(text) };
}

/** The integer OPA reads in a segment, if it reads one (see PathSegment). */
function integerOf(text: string): bigint | undefined {
  // strconv.Atoi: an optional sign and decimal digits, within int64.
  const atoi = /^[+-]?[0-9]+$/.test(text) ? BigInt(text) : undefined;
  if (atoi !== undefined) {
    return atoi >= -(2n ** 63n) && atoi < 2n ** 63n ? atoi : undefined;
  }
  // A dot with zeros, digits on either side or none (OPA reads `.`, `+.` and `-.` as 0 too).
  const dotted = /^([+-]?)([0-9]*)\.0*$/.exec(text);
  if (dotted === null) return undefined;
  const whole = BigInt(dotted[2] === "" || dotted[2] === undefined ? "0" : dotted[2]);
  return dotted[1] === "-" ? -whole : whole;
}

/** The segments as OPA's `path` (a decision record's), joined with "/". */
export function pathText(segments: readonly PathSegment[]): string {
  return segments.map((segment) => segment.text).join("/");
}

/**
 * Where a document comes from, which decides how an object takes a numeric
 * segment: a base document (data) is read from OPA's store, whose keys are
 * strings, so `00` finds `"0"`; a rule's value is evaluated, where the number
 * 0 is not the string "0" (OPA answers undefined, or a type error when its
 * checker knows the keys): the PDP answers undefined.
 */
export type DocumentKind = "base" | "virtual";

/**
 * The value at `segments` inside a JSON document, each segment read as OPA
 * reads it: an array takes the integer of a numeric segment (in range), an
 * object the key as written, or a numeric segment's canonical spelling in a
 * base document (own keys only).
 */
export function documentAt(
  value: unknown,
  segments: readonly PathSegment[],
  kind: DocumentKind,
): EvaluationOutcome {
  let current = value;
  for (const segment of segments) {
    if (Array.isArray(current)) {
      const index = segment.integer;
      if (index === undefined || index < 0n || index >= BigInt(current.length)) {
        return { defined: false };
      }
      current = current[Number(index)] as unknown;
      continue;
    }
    if (segment.integer !== undefined && kind === "virtual") return { defined: false };
    const key = segment.integer === undefined ? segment.text : segment.integer.toString();
    if (typeof current === "object" && current !== null && Object.hasOwn(current, key)) {
      current = (current as Record<string, unknown>)[key];
    } else {
      return { defined: false };
    }
  }
  return { defined: true, value: current };
}
