// Executes operations with graphql-jit instead of graphql-js's generic executor: each distinct
// operation is compiled once into plain JS functions, which run the same resolvers with the
// same results far faster on long lists. Plugged in through Apollo Server's executor hook (the
// `gateway` option), so parsing, validation, plugins, error formatting and HTTP stay Apollo's.
// A subscription (over WebSocket only) is opened here: graphql-js's `subscribe` runs its
// `subscribe` resolver, and the stream of event results is left on the context for graphql-ws.
import type {
  GatewayExecutionResult,
  GatewayExecutor,
  GatewayInterface,
} from '@apollo/server-gateway-interface';
import {
  GraphQLError,
  Kind,
  execute,
  getOperationAST,
  subscribe,
  printSchema,
  type DocumentNode,
  type ExecutionResult,
  type FragmentDefinitionNode,
  type GraphQLSchema,
  type SelectionSetNode,
} from 'graphql';
import { compileQuery, isCompiledQuery, type CompiledQuery } from 'graphql-jit';
import { LRUCache } from 'lru-cache';
import type { GatewayContext } from '../context.js';
import type { HeldDocuments } from '../subscriptions/held-documents.js';
import { cacheWeight, documentBytes } from './document-memory.js';

/**
 * Bytes of compiled operations kept, all together (docs/security.md); the least recently used
 * goes first. Weighed, not counted: one operation compiles to 8 KB, another to 2 MB (15 aliases
 * spreading a fragment of every field, within the default limits), and 1,000 of those (the bound
 * before) would hold 2 GB.
 */
export const COMPILED_OPERATION_BYTES = 48 * 1024 * 1024;
/**
 * Measured: graphql-jit's code for one field of an operation, in place wherever a fragment is
 * spread (its resolve info and handlers are functions of their own): 4.4 KB compiled, 5.2 to
 * 6.1 KB once run.
 */
const COMPILED_BYTES_PER_FIELD = 6 * 1024;

type Compiled = CompiledQuery<Record<string, unknown>, Record<string, unknown>>;

export interface ExecutionRequest {
  document: DocumentNode;
  operationName: string | null;
  variables: Record<string, unknown> | undefined;
  contextValue: unknown;
  /** Identifies the document text, so each distinct operation is compiled once. */
  documentKey: string;
}

/** Runs operations compiled by graphql-jit, with graphql-js's exact errors when there are any. */
export function compiledExecution(schema: GraphQLSchema, heldDocuments?: HeldDocuments) {
  // Keyed by Apollo's hash of the document text and the operation name (documents come from clients).
  const compiled = new LRUCache<string, Compiled>({ maxSize: COMPILED_OPERATION_BYTES });

  function compiledFor(request: ExecutionRequest): Compiled | ExecutionResult {
    const key = `${request.documentKey}:${request.operationName ?? ''}`;
    const cached = compiled.get(key);
    if (cached !== undefined) return cached;
    const result = compileQuery(schema, request.document, request.operationName ?? undefined);
    if (!isCompiledQuery(result)) return result;
    const query = result as Compiled;
    // A compiled operation holds its document too.
    const bytes =
      documentBytes(request.document) +
      compiledFields(request.document, request.operationName) * COMPILED_BYTES_PER_FIELD;
    compiled.set(key, query, { size: cacheWeight(bytes, COMPILED_OPERATION_BYTES) });
    return query;
  }

  /** graphql-js's own execution: the reference the compiled one must match. */
  const executeGeneric = (request: ExecutionRequest) =>
    execute({
      schema,
      document: request.document,
      contextValue: request.contextValue,
      variableValues: request.variables,
      operationName: request.operationName,
    }) as Promise<ExecutionResult>;

  /** Opens the subscription's stream onto the context; the errors when it could not be opened. */
  async function openSubscription(request: ExecutionRequest): Promise<ExecutionResult> {
    const opened = await subscribe({
      schema,
      document: request.document,
      contextValue: request.contextValue,
      variableValues: request.variables,
      operationName: request.operationName,
    });
    if (!(Symbol.asyncIterator in opened)) return opened;
    const { operation, credentialIdentity } = request.contextValue as GatewayContext;
    if (operation.transport !== 'websocket') {
      // Nobody would read it (HTTP refuses subscriptions before this): it must not poll unheard.
      void opened.return(undefined);
      throw new Error('a subscription ran without a stream to open (HTTP refuses them first)');
    }
    // What this stream holds while it runs, against its key's share: the text its parsed
    // document keeps (whether it came as text, by APQ hash or by trusted-document id). Only a
    // caller with a key gets this far: the stream's resolver needs one.
    const bytes = request.document.loc?.source.body.length ?? 0;
    const held = heldDocuments?.hold(opened, bytes, credentialIdentity ?? '') ?? opened;
    if (held instanceof GraphQLError) return { errors: [held] };
    operation.liveEvents = held;
    return {};
  }

  return async (request: ExecutionRequest): Promise<ExecutionResult> => {
    const type = getOperationAST(request.document, request.operationName)?.operation;
    if (type === 'subscription') return openSubscription(request);
    // Mutations run once, by graphql-js: a write must never run again to get exact errors.
    if (type !== 'query') return executeGeneric(request);
    const query = compiledFor(request);
    if (!isCompiledQuery(query)) return executeGeneric(request);
    const result = await query.query(undefined, request.contextValue, request.variables ?? {});
    if (!result.errors?.length) return result;
    // No data: the variables were refused before any resolver ran; graphql-js gives the exact
    // errors (with the `nodes` Apollo reads to answer 400 BAD_USER_INPUT).
    // Data null: a non-null root field failed, and graphql-js reports only the first such error
    // where graphql-jit reports all; graphql-js runs again (the loaders hold the upstream answers).
    if (result.data === undefined || result.data === null) return executeGeneric(request);
    // Field errors: never run the resolvers twice; give graphql-jit's errors graphql-js's form.
    return { errors: result.errors.map(asGraphQLJsError), data: result.data };
  };
}

/**
 * The fields graphql-jit compiles for an operation: its own, and a fragment's once per place it
 * is spread (counted once per fragment, so nested spreads cannot make the count take long).
 */
function compiledFields(document: DocumentNode, operationName: string | null): number {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions)
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  const inFragment = new Map<string, number>();
  const fieldsIn = (selectionSet: SelectionSetNode | undefined): number => {
    let fields = 0;
    for (const selection of selectionSet?.selections ?? []) {
      if (selection.kind === Kind.FIELD) fields += 1 + fieldsIn(selection.selectionSet);
      else if (selection.kind === Kind.INLINE_FRAGMENT) fields += fieldsIn(selection.selectionSet);
      else {
        const name = selection.name.value;
        let count = inFragment.get(name);
        if (count === undefined) inFragment.set(name, (count = fieldsIn(fragments.get(name)?.selectionSet)));
        fields += count;
      }
    }
    return fields;
  };
  return fieldsIn(getOperationAST(document, operationName)?.selectionSet);
}

/**
 * graphql-jit's errors lack the `extensions` object graphql-js always sets (Apollo reads it) and
 * are not built by graphql-js's constructor: rebuild one with the same message, path, locations
 * and original error.
 */
function asGraphQLJsError(error: GraphQLError): GraphQLError {
  const rebuilt = new GraphQLError(error.message, {
    path: error.path,
    originalError: error.originalError,
    extensions:
      error.originalError instanceof GraphQLError ? error.originalError.extensions : error.extensions,
  });
  Object.defineProperty(rebuilt, 'locations', { value: error.locations, enumerable: true });
  return rebuilt;
}

/** The executor hook for Apollo Server: a "gateway" that serves this schema, executed compiled. */
export function jitExecution(schema: GraphQLSchema, heldDocuments?: HeldDocuments): GatewayInterface {
  const run = compiledExecution(schema, heldDocuments);
  const executor: GatewayExecutor = async (request) =>
    (await run({
      document: request.document,
      // The name the client asked for: Apollo's `operationName` is that of the operation it
      // resolved, null when none matched, which would run a document's only operation instead.
      operationName: request.request.operationName ?? null,
      variables: request.request.variables,
      contextValue: request.context,
      documentKey: request.queryHash,
    })) as GatewayExecutionResult;

  return {
    async load() {
      return { executor };
    },
    onSchemaLoadOrUpdate(callback) {
      callback({ apiSchema: schema, coreSupergraphSdl: printSchema(schema) });
      return () => undefined;
    },
    async stop() {},
  };
}
