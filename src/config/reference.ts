/**
 * The configuration reference (README, "Configuration reference"), rendered
 * from the schema and the environment table, so the documentation cannot
 * drift from what the loader accepts (test/config/reference.test.ts).
 */
import { z } from "zod";
import { environmentKeys } from "./environment.ts";
import { configFileSchema } from "./schema.ts";

interface JsonSchema {
  type?: string;
  description?: string;
  defaultText?: string;
  default?: unknown;
  minimum?: number;
  maximum?: number;
  enum?: unknown[];
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  additionalProperties?: JsonSchema | boolean;
  required?: string[];
}

interface Row {
  key: string;
  type: string;
  default: string;
  variable: string;
  meaning: string;
}

/** The reference as Markdown: one table per section (unformatted; the caller runs prettier). */
export function renderConfigReference(): string {
  const root = z.toJSONSchema(configFileSchema, {
    io: "input",
    unrepresentable: "any",
  }) as JsonSchema;
  const variables = new Map(
    Object.entries(environmentKeys).map(([variable, key]) => [key.join("."), variable]),
  );
  const parts: string[] = [];
  for (const [section, schema] of Object.entries(root.properties ?? {})) {
    const rows: Row[] = [];
    collect(section, schema, false, rows, variables);
    parts.push(`#### \`${section}\`${schema.description ? `: ${schema.description}` : ""}`);
    parts.push(
      [
        "| key | type | default | variable | meaning |",
        "| --- | --- | --- | --- | --- |",
        ...rows.map(
          (row) =>
            `| \`${row.key}\` | ${row.type} | ${row.default} | ${row.variable} | ${row.meaning} |`,
        ),
      ].join("\n"),
    );
  }
  return `${parts.join("\n\n")}\n`;
}

function collect(
  key: string,
  schema: JsonSchema,
  required: boolean,
  rows: Row[],
  variables: ReadonlyMap<string, string>,
): void {
  const record =
    typeof schema.additionalProperties === "object" ? schema.additionalProperties : undefined;
  if (schema.type === "object" && schema.properties !== undefined) {
    for (const [name, child] of Object.entries(schema.properties)) {
      collect(`${key}.${name}`, child, schema.required?.includes(name) === true, rows, variables);
    }
    return;
  }
  if (schema.type === "object" && record?.type === "object") {
    if (schema.description !== undefined) {
      rows.push(row(`${key}.<name>`, "mapping", schema, required, variables, key));
    }
    collect(`${key}.<name>`, record, false, rows, variables);
    return;
  }
  if (schema.type === "array" && schema.items?.type === "object") {
    rows.push(row(`${key}[]`, "list", schema, required, variables, key));
    collect(`${key}[]`, schema.items, false, rows, variables);
    return;
  }
  rows.push(row(key, typeOf(schema), schema, required, variables, key));
}

function row(
  key: string,
  type: string,
  schema: JsonSchema,
  required: boolean,
  variables: ReadonlyMap<string, string>,
  path: string,
): Row {
  const variable = variables.get(path);
  return {
    key,
    type,
    default:
      schema.defaultText ??
      (schema.default !== undefined
        ? `\`${JSON.stringify(schema.default)}\``
        : required
          ? "required"
          : "none"),
    variable: variable === undefined ? "" : `\`${variable}\``,
    // A section's own row (`issuers[]`) would repeat the heading above the table.
    meaning: path.includes(".") ? (schema.description ?? "").replaceAll("|", "\\|") : "",
  };
}

function typeOf(schema: JsonSchema): string {
  if (schema.enum !== undefined)
    return schema.enum.map((value) => `\`${String(value)}\``).join(", ");
  switch (schema.type) {
    case "integer":
      return `integer ${schema.minimum ?? ""}–${schema.maximum ?? ""}`;
    case "array":
      return schema.items === undefined ? "list" : `list of ${typeOf(schema.items)}`;
    case "object":
      return "mapping";
    case undefined:
      return "any";
    default:
      return schema.type;
  }
}
