// What a tool call answers: MCP's result, structured and as text; a failure as a tool error
// (`isError`) carrying the GraphQL errors, codes and messages as /graphql has them.
import type { GraphQLRequest } from '@apollo/server';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { FormattedExecutionResult, GraphQLFormattedError } from 'graphql';
import type { GatewayContext } from '../context.js';
import { ErrorCode } from '../errors.js';

/** One GraphQL operation through Apollo Server's pipeline, for the caller of the MCP request. */
export type ExecuteOperation = (
  request: GraphQLRequest,
) => Promise<{ result: FormattedExecutionResult; context: GatewayContext }>;

/** A tool call's result, and whose call it was (the operation's context), for its log line. */
export interface ToolOutcome {
  result: CallToolResult;
  context?: GatewayContext;
}

/** A tool error that carries the GraphQL code and message, as MCP's `isError` result. */
export function toolError(errors: readonly GraphQLFormattedError[], data?: unknown): CallToolResult {
  return {
    isError: true,
    content: [
      {
        type: 'text',
        text: errors
          .map(
            (error) =>
              `${String(error.extensions?.code ?? ErrorCode.INTERNAL_SERVER_ERROR)}: ${error.message}`,
          )
          .join('\n'),
      },
    ],
    structuredContent: { errors, ...(data !== undefined && data !== null && { data }) },
  };
}

/** What a message or log line shows of a caller's name, key or URI: the body may be a megabyte. */
export function shown(text: string): string {
  return text.length > 100 ? `${text.slice(0, 100)}…` : text;
}

export function refusal(
  code: string,
  message: string,
  extensions: Record<string, unknown> = {},
): CallToolResult {
  return toolError([{ message, extensions: { ...extensions, code } }]);
}

export function answer(
  structured: Record<string, unknown>,
  text = JSON.stringify(structured, null, 2),
): CallToolResult {
  return { content: [{ type: 'text', text }], structuredContent: structured };
}

/** The codes of a result's errors, for the log line. */
export function codesOf(result: CallToolResult): string[] | undefined {
  if (!result.isError) return undefined;
  const errors = (result.structuredContent as { errors?: GraphQLFormattedError[] } | undefined)?.errors;
  return errors?.map((error) => String(error.extensions?.code ?? ErrorCode.INTERNAL_SERVER_ERROR));
}
