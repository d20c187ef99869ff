import { z } from "zod";
import { resourceIdentity } from "../decision/resource-identity.ts";
import { ApiError } from "../errors.ts";
import type { AccessRequest } from "../decision/decision.ts";

/**
 * The AuthZEN request shapes, in zod (the one schema library, as for the
 * configuration). Unknown fields are allowed (the spec says to ignore them);
 * the fields the PDP and the default policy read are typed, so a wrong type
 * is a 400 naming the field, never a silent mismatch.
 *
 * A schema only judges: what a parse returns is the value that was sent, never
 * zod's copy, so the policy sees every key in the order it came.
 *
 * Lengths count code points (zod counts them so), as JSON Schema did before.
 */
const identifier = z.string().min(1).max(1024);
const shortText = z.string().max(1024);
const textList = z.array(shortText).max(256);

const subject = z.looseObject({
  type: z.string().min(1).max(256),
  id: identifier.optional(),
  properties: z
    .looseObject({
      // null: the user presented no token (a PEP says so explicitly, so that its
      // request is never read as an asserted subject).
      token: z
        .string({ error: typeWord("string,null") })
        .min(1)
        .max(65536)
        .nullable()
        .optional(),
      scopes: textList.optional(),
      scope: z.string().max(16384).optional(),
      acr: shortText.optional(),
      amr: textList.optional(),
      auth_time: z.number().optional(),
      client_id: shortText.optional(),
    })
    .optional(),
});

const action = z.looseObject({
  name: z.string().min(1).max(256),
  properties: z.looseObject({}).optional(),
});

const annotations = z.looseObject({
  title: shortText.optional(),
  readOnlyHint: z.boolean().optional(),
  destructiveHint: z.boolean().optional(),
  idempotentHint: z.boolean().optional(),
  openWorldHint: z.boolean().optional(),
});

const resource = z.looseObject({
  type: z.string().min(1).max(256),
  id: identifier,
  properties: z
    .looseObject({
      server: shortText.optional(),
      tool: shortText.optional(),
      annotations: annotations.optional(),
    })
    .optional(),
});

const context = z.looseObject({
  ip: z.string().max(64).optional(),
  device: z.looseObject({ id: shortText.optional(), trust: shortText.optional() }).optional(),
  location: z.looseObject({ country: shortText.optional() }).optional(),
  session: z.looseObject({ id: shortText.optional() }).optional(),
  // The obligation types the PEP can perform (AuthZEN obligations profile): a malformed list
  // is refused, so a PEP never gets a shape it did not ask for by mistake.
  supported_obligations: z.array(shortText).max(16).optional(),
});

const accessRequestSchema = z.looseObject({
  subject,
  action,
  resource,
  context: context.optional(),
});

export const evaluationsSemantics = [
  "execute_all",
  "deny_on_first_deny",
  "permit_on_first_permit",
] as const;
export type EvaluationsSemantic = (typeof evaluationsSemantics)[number];

/** The parts an item may inherit; checked in full once defaults apply (parseAccessRequest). */
const inheritable = {
  subject: z.looseObject({}).optional(),
  action: z.looseObject({}).optional(),
  resource: z.looseObject({}).optional(),
  context: z.looseObject({}).optional(),
};

const evaluationsRequestSchema = z.looseObject({
  ...inheritable,
  evaluations: z.array(z.looseObject(inheritable)).optional(),
  options: z
    .looseObject({
      evaluations_semantic: z.enum(evaluationsSemantics).optional(),
      include_context: z.boolean().optional(),
    })
    .optional(),
});

/** A batch request before defaults are applied to its items. */
export type EvaluationsRequest = z.infer<typeof evaluationsRequestSchema>;

/** The AuthZEN search APIs (§8): which resources, actions or subjects the policy allows. */
export const searchKinds = ["resource", "action", "subject"] as const;
export type SearchKind = (typeof searchKinds)[number];

const page = z.looseObject({
  token: z.string().max(512).optional(),
  // JSON Schema's integer: any whole number (a page limit above the maximum is refused later,
  // with the maximum named), not zod's safe-integer int().
  limit: z
    .number({ error: typeWord("integer") })
    .refine(Number.isInteger, "must be integer")
    .min(1)
    .optional(),
});

/** The searched entity: its type (an id, if sent, is ignored by the default policy's candidates). */
const searchedResource = z.looseObject({
  type: resource.shape.type,
  id: identifier.optional(),
  properties: z.looseObject({ server: shortText.optional() }).optional(),
});

const searchedSubject = z.looseObject({
  type: subject.shape.type,
  id: identifier.optional(),
  properties: z.looseObject({}).optional(),
});

const searchRequestSchemas = {
  resource: z.looseObject({
    subject,
    action,
    resource: searchedResource,
    context: context.optional(),
    page: page.optional(),
  }),
  action: z.looseObject({
    subject,
    resource,
    context: context.optional(),
    page: page.optional(),
  }),
  subject: z.looseObject({
    subject: searchedSubject,
    action,
    resource,
    context: context.optional(),
    page: page.optional(),
  }),
} as const;

/** A search request as validated: the searched entity may lack an id, and `page` is separate. */
export interface SearchRequest {
  subject: { type: string; id?: string; properties?: Record<string, unknown> };
  action?: AccessRequest["action"];
  resource: { type: string; id?: string; properties?: Record<string, unknown> };
  context?: Record<string, unknown>;
  page?: { token?: string; limit?: number };
}

/**
 * Validates a single access request; throws `invalid_request` naming the
 * field. `subject.id` may be omitted when `subject.properties.token` is sent:
 * the verified token names the subject.
 */
export function parseAccessRequest(value: unknown, pointerPrefix = ""): AccessRequest {
  check(accessRequestSchema, value, pointerPrefix);
  const request = value as AccessRequest;
  const subject = request.subject as Partial<AccessRequest["subject"]>;
  if (subject.id === undefined && subject.properties?.token === undefined) {
    const field = `${pointerPrefix}/subject/id`;
    throw new ApiError(
      "invalid_request",
      `${field} is required (or send subject.properties.token)`,
      field,
    );
  }
  return { ...request, resource: resourceIdentity(request.resource, `${pointerPrefix}/resource`) };
}

/** Validates the envelope of a batch request (items are validated after defaults apply). */
export function parseEvaluationsRequest(value: unknown): EvaluationsRequest {
  check(evaluationsRequestSchema, value, "");
  return value as EvaluationsRequest;
}

/**
 * Validates a search request of `kind`; throws `invalid_request` naming the
 * field. As for an evaluation, a subject that is not the searched entity needs
 * an id or a token.
 */
export function parseSearchRequest(kind: SearchKind, value: unknown): SearchRequest {
  check(searchRequestSchemas[kind], value, "");
  const request = value as SearchRequest;
  if (
    kind !== "subject" &&
    request.subject.id === undefined &&
    request.subject.properties?.token === undefined
  ) {
    throw new ApiError(
      "invalid_request",
      "/subject/id is required (or send subject.properties.token)",
      "/subject/id",
    );
  }
  return request;
}

/** One set of parse parameters for every request (zod copies them, never changes them). */
// reportInput: a missing key is told from a wrong value by its input (undefined).
const parseParams = { error: wireMessage, reportInput: true } as const;

/**
 * Returns when `schema` accepts `value`; the caller then passes `value` on
 * itself, never zod's output (a copy: the policy must see what was sent),
 * typed as the declared shape (which reads `?` as "absent" where zod's
 * inferred types say "absent or undefined"). Else throws `invalid_request` naming the one field the
 * wire reports (`reportedIssue`) as a JSON pointer under `pointerPrefix`.
 */
function check(schema: z.ZodType, value: unknown, pointerPrefix: string): void {
  const result = schema.safeParse(value, parseParams);
  if (result.success) return;
  const issue = reportedIssue(result.error.issues);
  if (issue === undefined) throw new ApiError("invalid_request", "request is invalid");
  const field = pointerPrefix + pointerOf(issue.path);
  throw new ApiError("invalid_request", `${field || "body"} ${issue.message}`, field);
}

/**
 * The one issue of a refused request that the API reports: the first a
 * depth-first reader meets, judging each value before what it contains. A
 * missing key belongs to the object that lacks it, a too-long list to the
 * list, so they come before any issue inside that object or list; between
 * siblings, the schema's order. (This is the answer JSON Schema validation
 * gave before, kept so clients see the same field.)
 */
function reportedIssue(issues: readonly z.core.$ZodIssue[]): z.core.$ZodIssue | undefined {
  let reported = issues[0];
  for (const issue of issues) {
    if (reported !== undefined && isAncestor(ownerOf(issue), ownerOf(reported))) reported = issue;
  }
  return reported;
}

function ownerOf(issue: z.core.$ZodIssue): readonly PropertyKey[] {
  return isMissing(issue) ? issue.path.slice(0, -1) : issue.path;
}

function isMissing(issue: z.core.$ZodIssue): boolean {
  return issue.code === "invalid_type" && issue.input === undefined && issue.path.length > 0;
}

/** `a` is a proper prefix of `b`. */
function isAncestor(a: readonly PropertyKey[], b: readonly PropertyKey[]): boolean {
  return a.length < b.length && a.every((segment, index) => segment === b[index]);
}

/** `/subject/properties/scopes/3` (RFC 6901: `~` and `/` escaped); the empty path is "". */
function pointerOf(path: readonly PropertyKey[]): string {
  let pointer = "";
  for (const segment of path) {
    pointer += `/${String(segment).replaceAll("~", "~0").replaceAll("/", "~1")}`;
  }
  return pointer;
}

/** The wire's words for a type refusal, where the schema's own type is not the whole story. */
function typeWord(expected: string): (issue: z.core.$ZodRawIssue) => string | undefined {
  return (issue) =>
    issue.code === "invalid_type" && issue.input !== undefined ? `must be ${expected}` : undefined;
}

/** What the API says about an issue: the words its clients have always read (JSON Schema's). */
function wireMessage(issue: z.core.$ZodRawIssue): string {
  switch (issue.code) {
    case "invalid_type":
      return issue.input === undefined ? "is required" : `must be ${issue.expected}`;
    case "too_big":
      return `must NOT have more than ${String(issue.maximum)} ${unitOf(issue.origin)}`;
    case "too_small":
      return issue.origin === "number"
        ? `must be >= ${String(issue.minimum)}`
        : `must NOT have fewer than ${String(issue.minimum)} ${unitOf(issue.origin)}`;
    case "invalid_value":
      return `must be one of ${issue.values.map(String).join(", ")}`;
    default:
      return "is invalid";
  }
}

function unitOf(origin: string): string {
  return origin === "string" ? "characters" : "items";
}
