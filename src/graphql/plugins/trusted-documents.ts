// Trusted documents in Apollo Server's pipeline, in `requestDidStart`: before Apollo reads the
// request's document, so before anything parses it.
//
// - A request that names a listed document (the APQ extension's `sha256Hash`, as Apollo
//   Client's persisted-queries link sends it, or a `documentId`, which the HTTP and WebSocket
//   layers carry in that extension) gets the listed body as its query, and the extension is
//   dropped, as Apollo Router does: the rest of the pipeline sees an ordinary document, and no
//   APQ lookup or registration happens.
// - With security.trustedDocuments.only, everything else is refused with PERSISTED_QUERY_NOT_IN_LIST
//   (Apollo Router's code), unparsed: an unknown id, or a text that is not, byte for byte, a
//   listed body. Introspection passes where it is enabled (security.introspection), as the
//   Router's safelist lets it: only that case parses an unlisted document, to see that it
//   selects nothing but `__schema`, `__type` and `__typename`.
//
// A refused request still runs the pipeline to its end, so every plugin sees it (the operation
// log, the metrics, an operator's): its document is swapped for a constant one that is never
// executed, and the refusal is thrown from `didResolveOperation`, which Apollo Server answers
// as a request error (HTTP 400) with the error's code.
import type { ApolloServerPlugin, GraphQLRequest } from '@apollo/server';
import {
  GraphQLError,
  Kind,
  OperationTypeNode,
  parse,
  type DocumentNode,
  type FragmentDefinitionNode,
  type ParseOptions,
  type SelectionSetNode,
} from 'graphql';
import type { GatewayContext } from '../../context.js';
import { ErrorCode } from '../../errors.js';
import type { TrustedDocuments } from '../trusted-document-list.js';

/** The code of a refused document (Apollo Router's, for the same refusal). */
export const PERSISTED_QUERY_NOT_IN_LIST = ErrorCode.PERSISTED_QUERY_NOT_IN_LIST;

/** What a refused request runs instead of its own document: cheap to parse, never executed. */
const REFUSED_STAND_IN = '{ __typename }';

const INTROSPECTION_FIELDS = new Set(['__schema', '__type', '__typename']);

export interface TrustedDocumentsPolicy {
  documents: TrustedDocuments;
  /** security.trustedDocuments.only: refuse every document that is not listed. */
  only: boolean;
  /** security.introspection: introspection passes the list where it is enabled. */
  introspection: boolean;
  /** The parser's limits (limits.maxTokens), for the one case that parses an unlisted document. */
  parseOptions: ParseOptions;
}

function notInList(): GraphQLError {
  return new GraphQLError(
    "This operation is not in the gateway's trusted documents. Send a listed operation by its id: the persistedQuery extension's sha256Hash, or documentId.",
    { extensions: { code: PERSISTED_QUERY_NOT_IN_LIST, http: { status: 400 } } },
  );
}

/** The APQ extension of a request, when it has a usable one. */
function persistedQueryOf(request: GraphQLRequest): { version: unknown; sha256Hash: string } | undefined {
  const persisted = request.extensions?.persistedQuery as
    { version?: unknown; sha256Hash?: unknown } | undefined;
  if (typeof persisted !== 'object' || persisted === null || typeof persisted.sha256Hash !== 'string') {
    return undefined;
  }
  return { version: persisted.version, sha256Hash: persisted.sha256Hash };
}

/** The request's extensions without the APQ one (or none left). */
function withoutPersistedQuery(request: GraphQLRequest): void {
  if (request.extensions === undefined) return;
  const { persistedQuery: _persistedQuery, ...rest } = request.extensions;
  request.extensions = Object.keys(rest).length ? rest : undefined;
}

/**
 * Whether every operation of the document selects only introspection fields at its root
 * (fragments spread there included), as Apollo Router decides it.
 */
export function isIntrospectionOnly(text: string, parseOptions: ParseOptions): boolean {
  // Cheap first: a document without these names is not introspection, and is not parsed.
  if (!text.includes('__schema') && !text.includes('__type')) return false;
  let document: DocumentNode;
  try {
    document = parse(text, { ...parseOptions, noLocation: true });
  } catch {
    return false;
  }
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  const onlyIntrospection = (set: SelectionSetNode, seen: Set<string>): boolean =>
    set.selections.every((selection) => {
      if (selection.kind === Kind.FIELD) return INTROSPECTION_FIELDS.has(selection.name.value);
      if (selection.kind === Kind.INLINE_FRAGMENT) return onlyIntrospection(selection.selectionSet, seen);
      const name = selection.name.value;
      const fragment = fragments.get(name);
      if (fragment === undefined) return false;
      // A fragment spread in itself is invalid; validation says so if it gets that far.
      if (seen.has(name)) return true;
      return onlyIntrospection(fragment.selectionSet, new Set(seen).add(name));
    });
  const operations = document.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);
  return (
    operations.length > 0 &&
    operations.every(
      (o) => o.operation === OperationTypeNode.QUERY && onlyIntrospection(o.selectionSet, new Set()),
    )
  );
}

export function trustedDocumentsPlugin(policy: TrustedDocumentsPolicy): ApolloServerPlugin<GatewayContext> {
  const { documents, only } = policy;
  /** The refused request runs the stand-in, and is answered with the refusal. */
  const refuse = (request: GraphQLRequest) => {
    documents.counted('refused');
    request.query = REFUSED_STAND_IN;
    request.operationName = undefined;
    request.variables = undefined;
    request.extensions = undefined;
    return {
      async didResolveOperation(): Promise<void> {
        throw notInList();
      },
    };
  };

  return {
    async requestDidStart({ request }) {
      // One version of the list for the whole request, whatever a reload does meanwhile.
      const list = documents.current;
      const persisted = persistedQueryOf(request);
      // graphql-ws requires a `query` string: an empty one beside an id means "none".
      const text = typeof request.query === 'string' && request.query !== '' ? request.query : undefined;

      if (text === undefined && persisted !== undefined) {
        // Another version: Apollo Server's own answer, "Unsupported persisted query version".
        if (persisted.version !== 1) return;
        const listed = list.byIdOrHash(persisted.sha256Hash);
        if (listed !== undefined) {
          documents.counted('id');
          request.query = listed.body;
          withoutPersistedQuery(request);
          return;
        }
        // Not listed, and other documents allowed: the APQ cache answers, as without a list.
        if (!only) return;
        return refuse(request);
      }

      if (text === undefined || !only) return;
      if (list.byText(text) !== undefined) {
        documents.counted('text');
        // Nothing to register: the text is listed already, and no APQ entry should outlive the list.
        withoutPersistedQuery(request);
        return;
      }
      if (policy.introspection && isIntrospectionOnly(text, policy.parseOptions)) {
        documents.counted('introspection');
        return;
      }
      return refuse(request);
    },
  };
}

/**
 * A request body that names its document by `documentId` (the GraphQL-over-HTTP persisted
 * documents proposal, Hive Gateway, the codegen client preset) carries it on as the APQ
 * extension, which the plugin resolves; the HTTP and WebSocket layers call this when trusted
 * documents are configured. A body with a document of its own is left as it is.
 */
export function documentIdAsPersistedQuery(operation: unknown): void {
  if (typeof operation !== 'object' || operation === null || Array.isArray(operation)) return;
  const body = operation as Record<string, unknown>;
  if (typeof body.documentId !== 'string' || (body.query !== undefined && body.query !== '')) return;
  const extensions =
    typeof body.extensions === 'object' && body.extensions !== null && !Array.isArray(body.extensions)
      ? (body.extensions as Record<string, unknown>)
      : {};
  body.extensions = { ...extensions, persistedQuery: { version: 1, sha256Hash: body.documentId } };
  delete body.query;
}
