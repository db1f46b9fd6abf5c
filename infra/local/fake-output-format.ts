/**
 * Structured outputs in the fake Anthropic server, as the real API documents them:
 * `output_config.format` is `{type: "json_schema", schema}`; the schema may use the basic
 * types, `enum`, `const`, `anyOf`, `allOf`, local `$ref`/`$defs`, `required`, string
 * `format`s and `minItems` of 0 or 1, and every object must set `additionalProperties: false`.
 * Numeric, string-length and other array limits, and non-local `$ref`s, are rejected with a
 * 400. The answer is text: a JSON object with the schema's properties, in the schema's order.
 */

type Schema = Record<string, unknown>;

const UNSUPPORTED_BY_TYPE: Record<string, string[]> = {
  number: ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"],
  integer: ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"],
  string: ["minLength", "maxLength"],
  array: ["maxItems", "uniqueItems", "contains"],
};

const isSchema = (value: unknown): value is Schema =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** What is wrong with a node of the schema (and its children), in the real API's words. */
function schemaProblem(node: unknown, path: string): string | undefined {
  if (!isSchema(node)) return `${path}: a schema must be an object`;
  const type = node.type;
  const unsupported = (typeof type === "string" ? (UNSUPPORTED_BY_TYPE[type] ?? []) : []).filter((k) => k in node);
  if (unsupported.length > 0) {
    const plural = unsupported.length > 1;
    return `${path}: For '${type}' type, ${plural ? "properties" : "property"} ${unsupported.sort().join(", ")} ${plural ? "are" : "is"} not supported`;
  }
  if (type === "array" && node.minItems !== undefined && node.minItems !== 0 && node.minItems !== 1) {
    return `${path}: For 'array' type, 'minItems' values other than 0 or 1 are not supported`;
  }
  if (type === "object" && node.additionalProperties !== false) {
    return `${path}: For 'object' type, 'additionalProperties' must be explicitly set to false`;
  }
  if (typeof node.$ref === "string" && !node.$ref.startsWith("#/")) {
    return `${path}: External $ref '${node.$ref}' is not supported`;
  }
  if (Array.isArray(node.enum) && node.enum.some((v) => typeof v === "object" && v !== null)) {
    return `${path}: enum values must be strings, numbers, booleans or null`;
  }
  const children: [string, unknown][] = [
    ...Object.entries(isSchema(node.properties) ? node.properties : {}).map(
      ([key, child]) => [`${path}.properties.${key}`, child] as [string, unknown],
    ),
    ...Object.entries(isSchema(node.$defs) ? node.$defs : {}).map(
      ([key, child]) => [`${path}.$defs.${key}`, child] as [string, unknown],
    ),
    ...(node.items === undefined ? [] : [[`${path}.items`, node.items] as [string, unknown]]),
    ...["anyOf", "allOf"].flatMap((key) =>
      Array.isArray(node[key])
        ? (node[key] as unknown[]).map((child, i) => [`${path}.${key}.${i}`, child] as [string, unknown])
        : [],
    ),
  ];
  for (const [childPath, child] of children) {
    const problem = schemaProblem(child, childPath);
    if (problem) return problem;
  }
  return undefined;
}

/** Why the API would refuse this `output_config.format`, or undefined when it takes it. */
export function outputFormatProblem(format: unknown): string | undefined {
  if (!isSchema(format) || format.type !== "json_schema") {
    return "output_config.format.type: Input should be 'json_schema'";
  }
  if (!isSchema(format.schema)) return "output_config.format.schema: Field required";
  return schemaProblem(format.schema, "output_config.format.schema");
}

/**
 * The answer as constrained decoding would write it: each object's properties in the
 * schema's order (through local `$ref`s), a missing array as [] and any other missing
 * property as null.
 */
export function shapedAnswer(answer: Record<string, unknown>, format: unknown): Record<string, unknown> {
  const root = isSchema(format) && isSchema(format.schema) ? format.schema : {};
  return shape(answer, root, root) as Record<string, unknown>;
}

function resolve(node: Schema, root: Schema): Schema {
  if (typeof node.$ref !== "string") return node;
  const target = node.$ref
    .replace(/^#\//, "")
    .split("/")
    .reduce<unknown>((at, key) => (isSchema(at) ? at[key] : undefined), root);
  return isSchema(target) ? resolve(target, root) : {};
}

function shape(value: unknown, node: Schema, root: Schema): unknown {
  const schema = resolve(node, root);
  if (schema.type !== "object" || !isSchema(schema.properties)) return value;
  const given = isSchema(value) ? value : {};
  return Object.fromEntries(
    Object.entries(schema.properties).map(([key, property]) => {
      const propertySchema = isSchema(property) ? resolve(property, root) : {};
      const fallback = propertySchema.type === "array" ? [] : propertySchema.type === "object" ? {} : null;
      return [key, shape(given[key] ?? fallback, propertySchema, root)];
    }),
  );
}
