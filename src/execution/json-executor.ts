// Answers a query without Apollo Server's per-request pipeline. An operation of a plain shape
// (a query whose nested fields take no arguments and resolve synchronously, with no directives
// and no abstract types) is compiled once into completers that run the schema's own resolvers
// and serializers and build the `data` object graphql-js would, ready for one JSON.stringify.
//
// It answers only when everything went right. On anything else (an argument or variable
// refused, a resolver that throws or returns a promise below the root, a null where the schema
// forbids one, a value a scalar refuses) it returns `undefined` and the caller runs the
// operation through Apollo Server with the same context: the loaders still hold what the
// upstream answered, so no call is made twice and the errors are exactly graphql-js's.
import {
  GraphQLID,
  GraphQLString,
  Kind,
  getArgumentValues,
  getOperationAST,
  getVariableValues,
  isAbstractType,
  isLeafType,
  isListType,
  isNonNullType,
  isObjectType,
  parse,
  specifiedRules,
  typeFromAST,
  validate,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLObjectType,
  type GraphQLOutputType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValidationRule,
} from 'graphql';
import type { CostCheck } from '../limits/query-limits.js';
import { BoundedMap } from '../bounded-map.js';

/** Thrown inside the completers: this answer needs the full pipeline. Never leaves this module. */
const FALL_BACK = Symbol('fall back to full execution');

type Complete = (value: unknown, context: unknown) => unknown;

/** Response key → the field nodes that ask for it, in response order (graphql-js's collectFields). */
type FieldGroups = Map<string, FieldNode[]>;

export interface JsonExecutorOptions {
  /** The same rules Apollo Server validates with (the query limits among them). */
  validationRules: readonly ValidationRule[];
  /** The same parse options (the token limit). */
  parseOptions: { maxTokens: number };
  /** The cost check of a document (see query-limits.ts). */
  costCheck: (document: DocumentNode, operationName: string | null) => CostCheck;
}

/** A compiled operation: `run` gives the result's `data`, or undefined to fall back. */
export interface CompiledJsonOperation {
  readonly operationName: string | null;
  run(
    variables: Record<string, unknown> | undefined,
    context: unknown,
  ): Promise<Record<string, unknown> | undefined>;
}

/** Documents compiled (or found unsupported) kept; the oldest is dropped past either bound. */
const OPERATIONS_KEPT = 1000;
/** Characters of document text kept as keys, all documents together. */
const OPERATIONS_KEPT_CHARS = 8 * 1024 * 1024;

export class JsonExecutor {
  private readonly operations = new BoundedMap<string, CompiledJsonOperation | null>(
    OPERATIONS_KEPT,
    OPERATIONS_KEPT_CHARS,
    (key) => key.length,
  );
  private readonly rules: readonly ValidationRule[];

  constructor(
    private readonly schema: GraphQLSchema,
    private readonly options: JsonExecutorOptions,
  ) {
    this.rules = [...specifiedRules, ...options.validationRules];
  }

  /** The compiled operation for this document, or undefined when it must run the full way. */
  operation(query: string, operationName: string | null): CompiledJsonOperation | undefined {
    // The document text is the key, held only while compiled; Map hashes a string once.
    const key = operationName === null ? query : `${operationName}\u0000${query}`;
    let compiled = this.operations.get(key);
    if (compiled === undefined) {
      compiled = this.compile(query, operationName) ?? null;
      this.operations.set(key, compiled);
    }
    return compiled ?? undefined;
  }

  private compile(query: string, operationName: string | null): CompiledJsonOperation | undefined {
    let document: DocumentNode;
    try {
      document = parse(query, { noLocation: true, maxTokens: this.options.parseOptions.maxTokens });
    } catch {
      return undefined;
    }
    if (validate(this.schema, document, this.rules).length > 0) return undefined;
    const operation = getOperationAST(document, operationName);
    if (operation?.operation !== 'query' || hasDirectives(document)) return undefined;
    const rootType = this.schema.getQueryType();
    if (!rootType) return undefined;

    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const definition of document.definitions) {
      if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
    }
    const compiler = new CompleterCompiler(this.schema, fragments);
    const groups = compiler.collect(rootType, [operation.selectionSet]);
    const rootFields = compiler.rootFields(rootType, groups);
    if (rootFields === undefined) return undefined;

    const { schema } = this;
    const costCheck = this.options.costCheck(document, operationName);
    return {
      operationName: operation.name?.value ?? null,
      async run(variables, context) {
        const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], variables ?? {});
        if (coerced.errors) return undefined;
        if (costCheck(variables ?? {})) return undefined;
        return runRoot(rootFields, operation, schema, coerced.coerced, context);
      },
    };
  }
}

function hasDirectives(document: DocumentNode): boolean {
  let found = false;
  const visit = (node: unknown): void => {
    if (found || node === null || typeof node !== 'object') return;
    if (Array.isArray(node)) {
      for (const item of node) visit(item);
      return;
    }
    const record = node as Record<string, unknown>;
    if (Array.isArray(record.directives) && record.directives.length > 0) {
      found = true;
      return;
    }
    for (const value of Object.values(record)) visit(value);
  };
  visit(document.definitions);
  return found;
}

interface RootField {
  responseKey: string;
  field: GraphQLField<unknown, unknown> | undefined;
  node: FieldNode;
  complete: Complete;
}

/** Calls the root resolvers in document order (as graphql-js does), then completes their values. */
async function runRoot(
  rootFields: readonly RootField[],
  operation: OperationDefinitionNode,
  schema: GraphQLSchema,
  variables: Record<string, unknown>,
  context: unknown,
): Promise<Record<string, unknown> | undefined> {
  const values: unknown[] = [];
  let failed = false;
  for (const root of rootFields) {
    if (root.field === undefined) {
      values.push(undefined);
      continue;
    }
    try {
      const args = getArgumentValues(root.field, root.node, variables);
      const info = { fieldName: root.field.name, schema, operation, variableValues: variables };
      values.push(root.field.resolve?.(undefined, args, context, info as never));
    } catch {
      failed = true;
      break;
    }
  }
  // Every promise gets a handler, even when the answer already falls back.
  const settled = await Promise.allSettled(values);
  if (failed) return undefined;
  const data: Record<string, unknown> = {};
  try {
    for (let i = 0; i < rootFields.length; i++) {
      const outcome = settled[i]!;
      if (outcome.status === 'rejected') return undefined;
      data[rootFields[i]!.responseKey] = rootFields[i]!.complete(outcome.value, context);
    }
  } catch (error) {
    if (error === FALL_BACK) return undefined;
    throw error;
  }
  return data;
}

function isPromiseLike(value: unknown): boolean {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

/** Builds the completers of one document: field collection as graphql-js does it, then one per type. */
class CompleterCompiler {
  constructor(
    private readonly schema: GraphQLSchema,
    private readonly fragments: Map<string, FragmentDefinitionNode>,
  ) {}

  /** graphql-js's collectFields/collectSubfields, for documents without directives. */
  collect(type: GraphQLObjectType, selectionSets: readonly SelectionSetNode[]): FieldGroups {
    const groups: FieldGroups = new Map();
    const visited = new Set<string>();
    const walk = (selectionSet: SelectionSetNode) => {
      for (const selection of selectionSet.selections) {
        if (selection.kind === Kind.FIELD) {
          const key = selection.alias?.value ?? selection.name.value;
          const group = groups.get(key);
          if (group) group.push(selection);
          else groups.set(key, [selection]);
        } else if (selection.kind === Kind.INLINE_FRAGMENT) {
          if (this.applies(selection.typeCondition?.name.value, type)) walk(selection.selectionSet);
        } else {
          const name = selection.name.value;
          if (visited.has(name)) continue;
          visited.add(name);
          const fragment = this.fragments.get(name);
          if (fragment && this.applies(fragment.typeCondition.name.value, type)) walk(fragment.selectionSet);
        }
      }
    };
    for (const selectionSet of selectionSets) walk(selectionSet);
    return groups;
  }

  private applies(condition: string | undefined, type: GraphQLObjectType): boolean {
    if (condition === undefined) return true;
    const conditionType = typeFromAST(this.schema, {
      kind: Kind.NAMED_TYPE,
      name: { kind: Kind.NAME, value: condition },
    });
    if (conditionType === type) return true;
    return (
      conditionType !== undefined &&
      isAbstractType(conditionType) &&
      this.schema.isSubType(conditionType, type)
    );
  }

  rootFields(rootType: GraphQLObjectType, groups: FieldGroups): RootField[] | undefined {
    const fields: RootField[] = [];
    for (const [responseKey, nodes] of groups) {
      if (responseKey === '__proto__') return undefined;
      const name = nodes[0]!.name.value;
      if (name === '__typename') {
        const typename = rootType.name;
        fields.push({ responseKey, field: undefined, node: nodes[0]!, complete: () => typename });
        continue;
      }
      const field = rootType.getFields()[name];
      if (field === undefined) return undefined;
      const complete = this.completer(field.type, nodes);
      if (complete === undefined) return undefined;
      fields.push({ responseKey, field, node: nodes[0]!, complete });
    }
    return fields;
  }

  /** graphql-js's completeValue for `type` asked for by `nodes`; undefined when not supported. */
  private completer(type: GraphQLOutputType, nodes: readonly FieldNode[]): Complete | undefined {
    if (isNonNullType(type)) {
      const inner = this.innerCompleter(type.ofType, nodes);
      if (inner === undefined) return undefined;
      return (value, context) => {
        if (value === null || value === undefined || value instanceof Error) throw FALL_BACK;
        return inner(value, context);
      };
    }
    const inner = this.innerCompleter(type, nodes);
    if (inner === undefined) return undefined;
    return (value, context) => {
      if (value instanceof Error) throw FALL_BACK;
      return value === null || value === undefined ? null : inner(value, context);
    };
  }

  /** Completes a value already known to be neither null nor an error. */
  private innerCompleter(type: GraphQLOutputType, nodes: readonly FieldNode[]): Complete | undefined {
    if (isListType(type)) {
      const item = this.completer(type.ofType, nodes);
      if (item === undefined) return undefined;
      return (value, context) => {
        if (!Array.isArray(value)) throw FALL_BACK;
        const list = new Array<unknown>(value.length);
        for (let i = 0; i < value.length; i++) {
          const entry: unknown = value[i];
          if (isPromiseLike(entry)) throw FALL_BACK;
          list[i] = item(entry, context);
        }
        return list;
      };
    }
    if (isLeafType(type)) {
      // graphql-js's own String and ID serializers return a string unchanged: skip the call.
      const keepsStrings = type === GraphQLString || type === GraphQLID;
      return (value) => {
        if (keepsStrings && typeof value === 'string') return value;
        if (isPromiseLike(value)) throw FALL_BACK;
        let serialized: unknown;
        try {
          serialized = type.serialize(value);
        } catch {
          throw FALL_BACK;
        }
        if (serialized === null || serialized === undefined) throw FALL_BACK;
        return serialized;
      };
    }
    if (isObjectType(type) && type.isTypeOf === undefined) {
      const selectionSets = nodes.flatMap((node) => (node.selectionSet ? [node.selectionSet] : []));
      return this.objectCompleter(type, this.collect(type, selectionSets));
    }
    // Interfaces, unions and types with isTypeOf: full execution.
    return undefined;
  }

  /**
   * One generated function per selection: it reads each field (the schema's resolver, or the
   * property as graphql-js's default resolver does) and returns an object literal with the
   * response keys in order, so every result object of a list shares one shape, which is what
   * makes building and then stringifying them fast.
   */
  private objectCompleter(type: GraphQLObjectType, groups: FieldGroups): Complete | undefined {
    const inputs: unknown[] = [];
    const input = (value: unknown) => `inputs[${inputs.push(value) - 1}]`;
    const reads: string[] = [];
    const entries: string[] = [];
    for (const [responseKey, nodes] of groups) {
      // An alias `__proto__` would set the object's prototype, not a key: full execution.
      if (responseKey === '__proto__') return undefined;
      const name = nodes[0]!.name.value;
      const result = `r${entries.length}`;
      entries.push(`${JSON.stringify(responseKey)}: ${result}`);
      if (name === '__typename') {
        reads.push(`const ${result} = ${JSON.stringify(type.name)};`);
        continue;
      }
      const field = type.getFields()[name];
      // Fields with arguments (a job's metrics) are loaded per object: full execution.
      if (field === undefined || field.args.length > 0) return undefined;
      const complete = this.completer(field.type, nodes);
      if (complete === undefined) return undefined;
      const value = `v${entries.length - 1}`;
      reads.push(
        field.resolve === undefined
          ? // graphql-js's default resolver, minus calling methods (records are plain data).
            `const ${value} = source[${JSON.stringify(name)}]; if (typeof ${value} === 'function') throw FALL_BACK;`
          : `const ${value} = ${input(field.resolve)}(source, EMPTY_ARGS, context, undefined);`,
        `if (${value} != null && typeof ${value}.then === 'function') throw FALL_BACK;`,
        `const ${result} = ${input(complete)}(${value}, context);`,
      );
    }
    const body = `
      return function complete${type.name}(source, context) {
        if (source === null || typeof source !== 'object' || typeof source.then === 'function') throw FALL_BACK;
        try {
          ${reads.join('\n          ')}
          return { ${entries.join(', ')} };
        } catch {
          throw FALL_BACK;
        }
      };`;
    // The source is built from the schema's type and field names and the document's response
    // keys, each written as a JSON string literal; values are passed in, never written out.
    // Arguments are frozen: a resolver that changed them would throw, and so fall back.
    return new Function('inputs', 'FALL_BACK', 'EMPTY_ARGS', body)(
      inputs,
      FALL_BACK,
      Object.freeze({}),
    ) as Complete;
  }
}
