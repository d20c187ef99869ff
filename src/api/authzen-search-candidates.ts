import type { WasmPolicy } from "../policy/wasm-policy.ts";
import type { SearchKind } from "./authzen-schemas.ts";
import { canonicalJson } from "./authzen-search-page.ts";

/** Most candidates one search considers; the rest are never searched (so never returned). */
export const maxSearchCandidates = 10000;

/** A resource or subject (`{type, id, properties?}`) or an action (`{name, properties?}`). */
export type Candidate = Record<string, unknown>;

/** Told when a policy's candidate entrypoint fails or answers something unusable. */
export type CandidateProblemListener = (problem: { entrypoint: string; detail: string }) => void;

/**
 * Where the candidates of a search come from: the entrypoints
 * `<package>/search_resource`, `<package>/search_action` and
 * `<package>/search_subject` beside the decision entrypoint (for the default
 * policy, `mcp/authz/search_*`). A candidate is only a question: the search
 * API asks the decision entrypoint about each one and returns the allowed
 * ones, so these rules decide nothing, and a wrong candidate can only be a
 * candidate that is denied.
 *
 * Candidates come back in one canonical order (by their canonical JSON), once
 * each, of the searched type only, at most `maxSearchCandidates`, so that an
 * offset names the same candidate on every page of one search. Anything the
 * entrypoint answers that is not a candidate is dropped and reported; an
 * undefined or failing entrypoint has no candidates (fail closed: nothing is
 * found).
 */
export class SearchCandidates {
  private readonly entrypoints: Readonly<Record<SearchKind, string>>;
  private readonly onProblem: CandidateProblemListener;

  /** The policy is given per call: a search asks the one its decisions are pinned to. */
  constructor(decisionEntrypoint: string, onProblem: CandidateProblemListener) {
    const base = decisionEntrypoint.split("/").slice(0, -1).join("/");
    const named = (kind: SearchKind) => `${base === "" ? "" : `${base}/`}search_${kind}`;
    this.entrypoints = {
      resource: named("resource"),
      action: named("action"),
      subject: named("subject"),
    };
    this.onProblem = onProblem;
  }

  /** The entrypoint the candidates of `kind` come from. */
  entrypoint(kind: SearchKind): string {
    return this.entrypoints[kind];
  }

  /** Whether the bundle can enumerate candidates of `kind` (else the search is not advertised). */
  supports(kind: SearchKind, policy: WasmPolicy): boolean {
    return policy.hasEntrypoint(this.entrypoints[kind]);
  }

  /** The candidates of a search; `input` is the search request as the policy sees it. */
  list(
    kind: SearchKind,
    input: Record<string, unknown>,
    searchedType: string,
    policy: WasmPolicy,
  ): Candidate[] {
    const entrypoint = this.entrypoints[kind];
    if (!this.supports(kind, policy)) return [];
    let value: unknown;
    try {
      const outcome = policy.evaluate(entrypoint, input);
      if (!outcome.defined) return [];
      value = outcome.value;
    } catch (error) {
      this.onProblem({
        entrypoint,
        detail: error instanceof Error ? error.message : String(error),
      });
      return [];
    }
    if (!Array.isArray(value)) {
      this.onProblem({ entrypoint, detail: "the answer is not a list (or set) of candidates" });
      return [];
    }
    const unique = new Map<string, Candidate>();
    let dropped = 0;
    for (const item of value) {
      if (!isCandidate(kind, item)) {
        dropped++;
        continue;
      }
      if (kind !== "action" && item.type !== searchedType) continue;
      unique.set(canonicalJson(item), item);
    }
    if (dropped > 0) {
      this.onProblem({
        entrypoint,
        detail: `${dropped} answer(s) are not candidates (${kind === "action" ? "{name}" : "{type, id}"} with strings) and were dropped`,
      });
    }
    const sorted = [...unique.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, candidate]) => candidate);
    if (sorted.length > maxSearchCandidates) {
      this.onProblem({
        entrypoint,
        detail: `${sorted.length} candidates, only the first ${maxSearchCandidates} are searched`,
      });
      return sorted.slice(0, maxSearchCandidates);
    }
    return sorted;
  }
}

function isCandidate(kind: SearchKind, item: unknown): item is Candidate {
  if (typeof item !== "object" || item === null || Array.isArray(item)) return false;
  const candidate = item as Record<string, unknown>;
  const properties = candidate.properties;
  if (properties !== undefined && (typeof properties !== "object" || properties === null)) {
    return false;
  }
  if (kind === "action") return typeof candidate.name === "string" && candidate.name !== "";
  return (
    typeof candidate.type === "string" && typeof candidate.id === "string" && candidate.id !== ""
  );
}
