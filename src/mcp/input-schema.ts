// A tool's input schema, derived from its operation's variables: each variable a property, typed
// from the schema (enums with their values), described by the SDL (the argument or input field it
// feeds, the input types' fields), required when non-null without a default. Nothing here checks
// a value: the pipeline coerces the variables, and refuses a bad one with BAD_USER_INPUT as it
// does over GraphQL.
import {
  astFromValue,
  GraphQLEnumType,
  GraphQLInputObjectType,
  GraphQLList,
  GraphQLNonNull,
  GraphQLScalarType,
  Kind,
  TypeInfo,
  typeFromAST,
  valueFromASTUntyped,
  visit,
  visitWithTypeInfo,
  type DocumentNode,
  type GraphQLInputType,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';

/** JSON Schema, as MCP carries it (`inputSchema`). */
export interface JsonSchema {
  [keyword: string]: unknown;
}

export interface ToolInputSchema extends JsonSchema {
  type: 'object';
  properties: Record<string, JsonSchema>;
  required?: string[];
}

const SCALARS: Record<string, JsonSchema> = {
  Int: { type: 'integer' },
  Float: { type: 'number' },
  String: { type: 'string' },
  Boolean: { type: 'boolean' },
  ID: { type: 'string' },
  DateTime: { type: 'string', format: 'date-time' },
  JSONObject: { type: 'object' },
};

function enumSchema(type: GraphQLEnumType): JsonSchema {
  const values = type.getValues();
  const described = values.filter((value) => value.description);
  return {
    type: 'string',
    enum: values.map((value) => value.name),
    // The values' own descriptions, where the SDL has them: an assistant picks by meaning.
    ...(described.length > 0 && {
      description: described.map((value) => `${value.name}: ${value.description}`).join('\n'),
    }),
  };
}

function withDescription(schema: JsonSchema, description: string | null | undefined): JsonSchema {
  if (!description) return schema;
  const own = typeof schema.description === 'string' ? `\n${schema.description}` : '';
  return { ...schema, description: `${description}${own}` };
}

/** The JSON Schema of a GraphQL input type; input objects nest (a cycle stops at its second visit). */
function inputTypeSchema(type: GraphQLInputType, seen: ReadonlySet<string> = new Set()): JsonSchema {
  if (type instanceof GraphQLNonNull) return inputTypeSchema(type.ofType, seen);
  if (type instanceof GraphQLList) return { type: 'array', items: inputTypeSchema(type.ofType, seen) };
  if (type instanceof GraphQLEnumType) return enumSchema(type);
  if (type instanceof GraphQLScalarType) {
    return withDescription(SCALARS[type.name] ?? {}, SCALARS[type.name] ? undefined : type.description);
  }
  const input: GraphQLInputObjectType = type;
  if (seen.has(input.name)) return withDescription({ type: 'object' }, input.description);
  const inner = new Set([...seen, input.name]);
  const properties: Record<string, JsonSchema> = {};
  const required: string[] = [];
  for (const field of Object.values(input.getFields())) {
    properties[field.name] = withDescription(inputTypeSchema(field.type, inner), field.description);
    if (field.type instanceof GraphQLNonNull && field.defaultValue === undefined) required.push(field.name);
  }
  return withDescription(
    {
      type: 'object',
      properties,
      ...(required.length > 0 && { required }),
      additionalProperties: false,
    },
    input.description,
  );
}

/**
 * What each variable feeds, as the SDL describes it: the argument (or input field) it is the
 * value of. A variable used in several places takes the first.
 */
function variableDescriptions(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
): Map<string, { description: string | undefined; defaultValue: unknown }> {
  const found = new Map<string, { description: string | undefined; defaultValue: unknown }>();
  const typeInfo = new TypeInfo(schema);
  const note = (name: string, description: string | null | undefined, defaultValue: unknown) => {
    if (!found.has(name)) found.set(name, { description: description ?? undefined, defaultValue });
  };
  // Fragments of the document are visited too: a variable may be used only in one of them.
  visit(
    document,
    visitWithTypeInfo(typeInfo, {
      Argument(node) {
        if (node.value.kind !== Kind.VARIABLE) return;
        const argument = typeInfo.getArgument();
        note(node.value.name.value, argument?.description, argument?.defaultValue);
      },
      ObjectField(node) {
        if (node.value.kind !== Kind.VARIABLE) return;
        const parent = typeInfo.getParentInputType();
        const field =
          parent instanceof GraphQLInputObjectType ? parent.getFields()[node.name.value] : undefined;
        note(node.value.name.value, field?.description, field?.defaultValue);
      },
    }),
  );
  // Only this operation's variables are asked for.
  const own = new Set(operation.variableDefinitions?.map((definition) => definition.variable.name.value));
  for (const name of found.keys()) if (!own.has(name)) found.delete(name);
  return found;
}

/** The input schema of an operation's variables (valid against `schema`: the caller checked). */
export function operationInputSchema(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
): ToolInputSchema {
  const uses = variableDescriptions(schema, document, operation);
  const properties: Record<string, JsonSchema> = {};
  const required: string[] = [];
  for (const definition of operation.variableDefinitions ?? []) {
    const name = definition.variable.name.value;
    const type = typeFromAST(schema, definition.type) as GraphQLInputType;
    const use = uses.get(name);
    let property = withDescription(inputTypeSchema(type), use?.description);
    // The operation's default, else the argument's (a variable left out leaves the argument unset).
    // Written as the client writes it (enum names, not the values resolvers see).
    const defaultNode = definition.defaultValue
      ? definition.defaultValue
      : type instanceof GraphQLNonNull || use?.defaultValue === undefined
        ? undefined
        : astFromValue(use.defaultValue, type);
    const defaultValue = defaultNode ? valueFromASTUntyped(defaultNode) : undefined;
    if (defaultValue !== undefined && defaultValue !== null)
      property = { ...property, default: defaultValue };
    properties[name] = property;
    if (type instanceof GraphQLNonNull && definition.defaultValue === undefined) required.push(name);
  }
  return {
    type: 'object',
    properties,
    ...(required.length > 0 && { required }),
    additionalProperties: false,
  };
}
