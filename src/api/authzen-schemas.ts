import { resourceIdentity } from "../decision/resource-identity.js";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { ApiError } from "../errors.js";
import type { AccessRequest } from "../decision/decision.js";

/**
 * JSON Schemas of the AuthZEN requests. Unknown fields are allowed (the spec
 * says to ignore them); the fields the PDP and the default policy read are
 * typed, so a wrong type is a 400 naming the field, never a silent mismatch.
 */
const identifier = { type: "string", minLength: 1, maxLength: 1024 } as const;
const shortText = { type: "string", maxLength: 1024 } as const;
const textList = { type: "array", maxItems: 256, items: shortText } as const;

const subject = {
  type: "object",
  required: ["type"],
  properties: {
    type: { type: "string", minLength: 1, maxLength: 256 },
    id: identifier,
    properties: {
      type: "object",
      properties: {
        // null: the user presented no token (a PEP says so explicitly, so that its
        // request is never read as an asserted subject).
        token: { type: ["string", "null"], minLength: 1, maxLength: 65536 },
        scopes: textList,
        scope: { type: "string", maxLength: 16384 },
        acr: shortText,
        amr: textList,
        auth_time: { type: "number" },
        client_id: shortText,
      },
    },
  },
} as const;

const action = {
  type: "object",
  required: ["name"],
  properties: {
    name: { type: "string", minLength: 1, maxLength: 256 },
    properties: { type: "object" },
  },
} as const;

const annotations = {
  type: "object",
  properties: {
    title: shortText,
    readOnlyHint: { type: "boolean" },
    destructiveHint: { type: "boolean" },
    idempotentHint: { type: "boolean" },
    openWorldHint: { type: "boolean" },
  },
} as const;

const resource = {
  type: "object",
  required: ["type", "id"],
  properties: {
    type: { type: "string", minLength: 1, maxLength: 256 },
    id: identifier,
    properties: {
      type: "object",
      properties: { server: shortText, tool: shortText, annotations },
    },
  },
} as const;

const context = {
  type: "object",
  properties: {
    ip: { type: "string", maxLength: 64 },
    device: { type: "object", properties: { id: shortText, trust: shortText } },
    location: { type: "object", properties: { country: shortText } },
    session: { type: "object", properties: { id: shortText } },
  },
} as const;

const accessRequestSchema = {
  type: "object",
  required: ["subject", "action", "resource"],
  properties: { subject, action, resource, context },
} as const;

export const evaluationsSemantics = [
  "execute_all",
  "deny_on_first_deny",
  "permit_on_first_permit",
] as const;
export type EvaluationsSemantic = (typeof evaluationsSemantics)[number];

/** The parts an item may inherit; checked in full once defaults apply (parseAccessRequest). */
const inheritable = {
  subject: { type: "object" },
  action: { type: "object" },
  resource: { type: "object" },
  context: { type: "object" },
} as const;

const evaluationsRequestSchema = {
  type: "object",
  properties: {
    ...inheritable,
    evaluations: { type: "array", items: { type: "object", properties: inheritable } },
    options: {
      type: "object",
      properties: {
        evaluations_semantic: { enum: evaluationsSemantics },
        include_context: { type: "boolean" },
      },
    },
  },
} as const;

/** A batch request before defaults are applied to its items. */
export interface EvaluationsRequest {
  subject?: Record<string, unknown>;
  action?: Record<string, unknown>;
  resource?: Record<string, unknown>;
  context?: Record<string, unknown>;
  evaluations?: Record<string, unknown>[];
  options?: { evaluations_semantic?: EvaluationsSemantic; include_context?: boolean };
}

/** The AuthZEN search APIs (§8): which resources, actions or subjects the policy allows. */
export const searchKinds = ["resource", "action", "subject"] as const;
export type SearchKind = (typeof searchKinds)[number];

const page = {
  type: "object",
  properties: {
    token: { type: "string", maxLength: 512 },
    limit: { type: "integer", minimum: 1 },
  },
} as const;

/** The searched entity: its type (an id, if sent, is ignored by the default policy's candidates). */
const searchedResource = {
  type: "object",
  required: ["type"],
  properties: {
    type: resource.properties.type,
    id: identifier,
    properties: { type: "object", properties: { server: shortText } },
  },
} as const;

const searchedSubject = {
  type: "object",
  required: ["type"],
  properties: { type: subject.properties.type, id: identifier, properties: { type: "object" } },
} as const;

const searchRequestSchemas = {
  resource: {
    type: "object",
    required: ["subject", "action", "resource"],
    properties: { subject, action, resource: searchedResource, context, page },
  },
  action: {
    type: "object",
    required: ["subject", "resource"],
    properties: { subject, resource, context, page },
  },
  subject: {
    type: "object",
    required: ["subject", "action", "resource"],
    properties: { subject: searchedSubject, action, resource, context, page },
  },
} as const;

/** A search request as validated: the searched entity may lack an id, and `page` is separate. */
export interface SearchRequest {
  subject: { type: string; id?: string; properties?: Record<string, unknown> };
  action?: AccessRequest["action"];
  resource: { type: string; id?: string; properties?: Record<string, unknown> };
  context?: Record<string, unknown>;
  page?: { token?: string; limit?: number };
}

const ajv = new Ajv({ allErrors: false, strict: true });
const validateAccess = ajv.compile<AccessRequest>(accessRequestSchema);
const validateEvaluations = ajv.compile<EvaluationsRequest>(evaluationsRequestSchema);
const validateSearch = {
  resource: ajv.compile<SearchRequest>(searchRequestSchemas.resource),
  action: ajv.compile<SearchRequest>(searchRequestSchemas.action),
  subject: ajv.compile<SearchRequest>(searchRequestSchemas.subject),
} as const;

/**
 * Validates a single access request; throws `invalid_request` naming the
 * field. `subject.id` may be omitted when `subject.properties.token` is sent:
 * the verified token names the subject.
 */
export function parseAccessRequest(value: unknown, pointerPrefix = ""): AccessRequest {
  const request = check(validateAccess, value, pointerPrefix);
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
  return check(validateEvaluations, value, "");
}

/**
 * Validates a search request of `kind`; throws `invalid_request` naming the
 * field. As for an evaluation, a subject that is not the searched entity needs
 * an id or a token.
 */
export function parseSearchRequest(kind: SearchKind, value: unknown): SearchRequest {
  const request = check(validateSearch[kind], value, "");
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

function check<T>(validate: ValidateFunction<T>, value: unknown, pointerPrefix: string): T {
  if (validate(value)) return value;
  const error = validate.errors?.[0];
  if (error === undefined) throw new ApiError("invalid_request", "request is invalid");
  const field = pointerPrefix + fieldOf(error);
  throw new ApiError("invalid_request", `${field || "body"} ${messageOf(error)}`, field);
}

function fieldOf(error: ErrorObject): string {
  if (error.keyword === "required") {
    const missing = (error.params as { missingProperty: string }).missingProperty;
    return `${error.instancePath}/${missing}`;
  }
  return error.instancePath;
}

function messageOf(error: ErrorObject): string {
  if (error.keyword === "required") return "is required";
  if (error.keyword === "enum") {
    return `must be one of ${(error.params as { allowedValues: unknown[] }).allowedValues.join(", ")}`;
  }
  return error.message ?? "is invalid";
}
