// The free-form tools (mcp.freeFormTools): they take GraphQL itself rather than a file's
// operation. describe_schema reads the schema by introspection and execute_operation runs a
// document, both through Apollo Server's pipeline; validate_operation runs the checks the pipeline
// runs before executing (parse with its token limit, validation with the armor's rules), and
// executes nothing.
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import {
  buildClientSchema,
  getIntrospectionQuery,
  GraphQLError,
  OperationTypeNode,
  parse,
  printSchema,
  printType,
  specifiedRules,
  validate,
  type DocumentNode,
  type GraphQLSchema,
  type IntrospectionQuery,
  type ParseOptions,
  type ValidationRule,
} from 'graphql';
import { ErrorCode } from '../errors.js';
import { documentTooLarge } from '../graphql/query-limits.js';
import type { ToolInputSchema } from './input-schema.js';
import { operationOf, type ToolAnnotations } from './tool-operations.js';
import {
  answer,
  refusal,
  shown,
  toolError,
  type ExecuteOperation,
  type ToolOutcome,
} from './tool-results.js';

/** A free-form tool: not an operation of a file, it takes GraphQL itself. */
export interface FreeFormTool {
  name: string;
  description: string;
  inputSchema: ToolInputSchema;
  annotations: ToolAnnotations;
  call(args: Record<string, unknown>, execute: ExecuteOperation): Promise<ToolOutcome>;
}

export interface FreeFormToolsOptions {
  schema: GraphQLSchema;
  /** What the pipeline refuses before parsing and validating (limits.maxBytes, tokens, armor's rules). */
  limits: { maxBytes: number; parseOptions: ParseOptions; validationRules: readonly ValidationRule[] };
  /** mcp.mutations: execute_operation runs mutations too. */
  mutations: boolean;
}

const QUERY_INPUT: ToolInputSchema = {
  type: 'object',
  properties: {
    query: { type: 'string', description: 'A GraphQL document.' },
  },
  required: ['query'],
  additionalProperties: false,
};

export function freeFormTools({ schema, limits, mutations }: FreeFormToolsOptions): FreeFormTool[] {
  /** The checks Apollo Server runs before anything executes, for a document not run. */
  const parsed = (query: unknown): { document: DocumentNode } | { result: CallToolResult } => {
    if (typeof query !== 'string' || query.trim() === '') {
      return {
        result: refusal(ErrorCode.BAD_USER_INPUT, '`query` must be a GraphQL document.', {
          argument: 'query',
        }),
      };
    }
    if (Buffer.byteLength(query) > limits.maxBytes) {
      // As /graphql refuses it, before parsing (its HTTP status aside).
      const { message, extensions } = documentTooLarge(limits.maxBytes);
      return { result: toolError([{ message, extensions: { ...extensions, http: undefined } }]) };
    }
    try {
      return { document: parse(query, limits.parseOptions) };
    } catch (error) {
      return { result: refusal('GRAPHQL_PARSE_FAILED', (error as GraphQLError).message) };
    }
  };
  return [
    {
      name: 'describe_schema',
      description:
        'The GraphQL schema of the fine-tune jobs API, in SDL with its descriptions; give `type` for one type only (e.g. FineTuneJob, Query, Mutation). Read by introspection, so it is refused where introspection is off.',
      inputSchema: {
        type: 'object',
        properties: { type: { type: 'string', description: 'One type to describe, e.g. `FineTuneJob`.' } },
        additionalProperties: false,
      },
      annotations: { readOnlyHint: true, openWorldHint: false },
      call: async (args, execute) => {
        if (args.type !== undefined && typeof args.type !== 'string') {
          return {
            result: refusal(ErrorCode.BAD_USER_INPUT, '`type` must be a string.', { argument: 'type' }),
          };
        }
        const { result, context } = await execute({
          query: getIntrospectionQuery({ descriptions: true }),
          operationName: 'IntrospectionQuery',
        });
        if (result.errors?.length) return { result: toolError(result.errors), context };
        const schema = buildClientSchema(result.data as unknown as IntrospectionQuery);
        if (args.type === undefined)
          return { result: answer({ sdl: printSchema(schema) }, printSchema(schema)), context };
        const type = schema.getType(args.type);
        if (type === undefined || type === null) {
          return {
            result: refusal(
              ErrorCode.NOT_FOUND,
              `The schema has no type ${JSON.stringify(shown(args.type))}.`,
              {
                argument: 'type',
              },
            ),
            context,
          };
        }
        return { result: answer({ sdl: printType(type) }, printType(type)), context };
      },
    },
    {
      name: 'validate_operation',
      description:
        'Checks a GraphQL document without running it: parsing and validation against the schema, with the limits checked there (size, tokens, depth, aliases, directives); the errors it would get, or `valid: true`. The cost and upstream-call estimates, which depend on the variables, are checked when it runs.',
      inputSchema: QUERY_INPUT,
      annotations: { readOnlyHint: true, openWorldHint: false },
      call: async (args) => {
        const checked = parsed(args.query);
        if ('result' in checked) return checked;
        const errors = validate(schema, checked.document, [...specifiedRules, ...limits.validationRules]);
        if (errors.length > 0) {
          return {
            result: toolError(
              errors.map((error) => ({
                message: error.message,
                extensions: {
                  ...error.extensions,
                  code: error.extensions.code ?? 'GRAPHQL_VALIDATION_FAILED',
                },
              })),
            ),
          };
        }
        return { result: answer({ valid: true }) };
      },
    },
    {
      name: 'execute_operation',
      description: `Runs any GraphQL query${mutations ? ' or mutation' : ''} against the fine-tune jobs API (see describe_schema) and returns its data; a failure is a tool error with the GraphQL code.${mutations ? '' : ' Mutations are off here (mcp.mutations).'}`,
      inputSchema: {
        type: 'object',
        properties: {
          query: { type: 'string', description: 'A GraphQL document.' },
          variables: { type: 'object', description: "The operation's variables." },
          operationName: {
            type: 'string',
            description: 'Which operation of the document to run, when it holds several.',
          },
        },
        required: ['query'],
        additionalProperties: false,
      },
      annotations: mutations
        ? { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false }
        : { readOnlyHint: true, openWorldHint: false },
      call: async (args, execute) => {
        const checked = parsed(args.query);
        if ('result' in checked) return checked;
        const { variables, operationName } = args;
        if (
          variables !== undefined &&
          (typeof variables !== 'object' || variables === null || Array.isArray(variables))
        ) {
          return {
            result: refusal(ErrorCode.BAD_USER_INPUT, '`variables` must be an object.', {
              argument: 'variables',
            }),
          };
        }
        if (operationName !== undefined && typeof operationName !== 'string') {
          return {
            result: refusal(ErrorCode.BAD_USER_INPUT, '`operationName` must be a string.', {
              argument: 'operationName',
            }),
          };
        }
        const operation = operationOf(checked.document, operationName);
        if (operation?.operation === OperationTypeNode.MUTATION && !mutations) {
          return {
            result: refusal(
              ErrorCode.FORBIDDEN,
              'Mutations are not offered to assistants here: the operator has not enabled them (mcp.mutations).',
            ),
          };
        }
        if (operation?.operation === OperationTypeNode.SUBSCRIPTION) {
          return {
            result: refusal(
              'BAD_REQUEST',
              'A tool answers once: subscriptions are served over WebSocket (graphql-ws) at /graphql.',
            ),
          };
        }
        const { result, context } = await execute({
          query: args.query as string,
          ...(variables !== undefined && { variables: variables as Record<string, unknown> }),
          ...(operationName !== undefined && { operationName }),
        });
        if (result.errors?.length) return { result: toolError(result.errors, result.data), context };
        return { result: answer(result.data ?? {}), context };
      },
    },
  ];
}
