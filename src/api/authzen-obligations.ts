import type { Decision } from "../decision/decision.ts";

/**
 * The AuthZEN obligations profile (openid/authzen, profiles/authzen-obligations-profile-1_0):
 * `context.obligations` as a list of `{type, id, properties}` objects that a
 * PEP MUST perform, or else treat the decision as a deny.
 *
 * The PDP's own shape stays the default: `context.obligations` is the object
 * the policy answered (`{step_up: {scopes, acr_values, max_age}}`). A request
 * whose `context.supported_obligations` names a type advertised here opts in
 * (the profile's negotiation), and its answer carries the profile's list
 * instead. Every entry of the policy's object becomes one obligation, so
 * nothing the policy asked for is dropped:
 *
 * - `step_up` with `acr_values` is a `step-up` obligation: `acr_value` is the
 *   first of them (each one satisfies the policy; the first is its
 *   preference), and the whole step-up the policy asked for stays in the
 *   properties beside it (`acr_values`, `scopes`, `max_age`): a PEP that
 *   meets only `acr_value` is asked again for the rest on its next request.
 * - anything else, a step-up without an acr (only scopes or a fresher
 *   sign-in) included, is a `custom` obligation carrying the policy's value:
 *   a PEP that does not know it must deny, which is fail-closed.
 */
export const supportedObligations = ["step-up", "custom"] as const;

export interface ProfileObligation {
  type: (typeof supportedObligations)[number];
  /** The policy's key for it (unique within the answer, as the profile requires). */
  id: string;
  properties: Record<string, unknown>;
}

/**
 * Whether the request opted in to the profile: its `context.supported_obligations`
 * (validated as a list of short strings by the request schema) names a type the
 * PDP advertises. Values it does not advertise are ignored, as the profile says.
 */
export function wantsObligationsProfile(context: Record<string, unknown> | undefined): boolean {
  const declared = context?.supported_obligations;
  if (!Array.isArray(declared)) return false;
  return declared.some((type) => (supportedObligations as readonly unknown[]).includes(type));
}

/** The decision's obligations as the profile's list, one per entry of the policy's object. */
export function profileObligationsOf(decision: Decision): ProfileObligation[] {
  return Object.entries(decision.obligations).flatMap(([id, value]): ProfileObligation[] => {
    // A null entry asks for nothing (the step-up reader reads it as no step-up, too).
    if (value === null || value === undefined) return [];
    const properties = isPlainObject(value) ? { ...value } : { value };
    const acrValue = id === "step_up" ? decision.stepUp?.acrValues[0] : undefined;
    if (acrValue !== undefined) {
      return [{ type: "step-up", id, properties: { ...properties, acr_value: acrValue } }];
    }
    return [{ type: "custom", id, properties }];
  });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
