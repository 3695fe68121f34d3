// The audit trail: one log line for every create, stop and cancel of a job, whatever became of it
// (done, refused by the gateway, failed upstream), and its count in gateway_job_writes_total. A
// plugin, so a write over HTTP, in a batch or over WebSocket is seen, and so is one refused
// before it ran (a limit, validation). One line per write field, not per operation.
import type { ApolloServerPlugin } from '@apollo/server';
import { unwrapResolverError } from '@apollo/server/errors';
import {
  Kind,
  getOperationAST,
  valueFromASTUntyped,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLFormattedError,
  type SelectionNode,
  type SelectionSetNode,
} from 'graphql';
import type { GatewayContext } from '../../context.js';
import { ErrorCode } from '../../errors.js';
import type { GatewayMetrics } from '../../observability/metrics.js';
import { UpstreamError } from '../../upstream/errors.js';

const ACTIONS = new Map([
  ['createFineTuneJob', 'create'],
  ['stopFineTuneJob', 'stop'],
  ['cancelFineTuneJob', 'cancel'],
] as const);
type JobWriteAction = 'create' | 'stop' | 'cancel';
type JobWriteOutcome = 'done' | 'refused' | 'failed';

/** Codes of a write the upstream was asked for and refused or could not do; any other is the gateway's refusal. */
const FAILED_CODES: ReadonlySet<string> = new Set([
  ErrorCode.NOT_FOUND,
  ErrorCode.CONFLICT,
  ErrorCode.UPSTREAM_RATE_LIMITED,
  ErrorCode.UPSTREAM_UNAVAILABLE,
  ErrorCode.UPSTREAM_TIMEOUT,
  ErrorCode.UPSTREAM_BAD_RESPONSE,
  ErrorCode.INTERNAL_SERVER_ERROR,
]);

/** A job id from a client can be anything; the line keeps this much of it. */
const MAX_JOB_ID_LENGTH = 128;

/**
 * Who acted, for the audit line: the identity of the credential (a hash of the key, never the
 * key) and, for a person signed in with a token, its subject and organization.
 */
export function auditCaller(context: GatewayContext): {
  credential: string | undefined;
  subject: string | undefined;
  organization: string | undefined;
} {
  const { subject, organization } = context.operation.caller;
  return { credential: context.credentialIdentity, subject, organization };
}

interface WriteField {
  responseKey: string;
  action: JobWriteAction;
  /** The id in its arguments (stop and cancel; a create's `input.id`), when there is one. */
  jobId: string | undefined;
}

/** `@skip(if: true)` or `@include(if: false)`: the field is not run. */
function skipped(node: SelectionNode, variables: Record<string, unknown> | undefined): boolean {
  return (node.directives ?? []).some((directive) => {
    const condition = directive.arguments?.find((argument) => argument.name.value === 'if');
    if (condition === undefined) return false;
    const value = valueFromASTUntyped(condition.value, variables);
    return (
      (directive.name.value === 'skip' && value === true) ||
      (directive.name.value === 'include' && value === false)
    );
  });
}

function argumentJobId(
  field: FieldNode,
  action: JobWriteAction,
  variables: Record<string, unknown> | undefined,
) {
  const argument = field.arguments?.find((a) => a.name.value === (action === 'create' ? 'input' : 'id'));
  let value: unknown = argument && valueFromASTUntyped(argument.value, variables);
  if (action === 'create')
    value = typeof value === 'object' && value !== null ? (value as { id?: unknown }).id : undefined;
  if (typeof value === 'number') value = String(value);
  return typeof value === 'string' ? value.slice(0, MAX_JOB_ID_LENGTH) : undefined;
}

/** The create, stop and cancel fields at the root of the operation run (through fragments too). */
function writeFields(
  document: DocumentNode,
  operationName: string | null | undefined,
  variables: Record<string, unknown> | undefined,
): WriteField[] {
  const operation = getOperationAST(document, operationName);
  if (operation?.operation !== 'mutation') return [];
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  const fields = new Map<string, WriteField>();
  const seenFragments = new Set<string>();
  const collect = (selectionSet: SelectionSetNode) => {
    for (const selection of selectionSet.selections) {
      if (skipped(selection, variables)) continue;
      if (selection.kind === Kind.INLINE_FRAGMENT) collect(selection.selectionSet);
      else if (selection.kind === Kind.FRAGMENT_SPREAD) {
        const fragment = fragments.get(selection.name.value);
        if (fragment && !seenFragments.has(fragment.name.value)) {
          seenFragments.add(fragment.name.value);
          collect(fragment.selectionSet);
        }
      } else {
        const action = ACTIONS.get(selection.name.value as never);
        const responseKey = selection.alias?.value ?? selection.name.value;
        // Two fields with one response key are one field (validation refuses them otherwise).
        if (action === undefined || fields.has(responseKey)) continue;
        fields.set(responseKey, { responseKey, action, jobId: argumentJobId(selection, action, variables) });
      }
    }
  };
  collect(operation.selectionSet);
  return [...fields.values()];
}

function codeOf(error: GraphQLFormattedError): string {
  return String(error.extensions?.code ?? ErrorCode.INTERNAL_SERVER_ERROR);
}

export function auditTrailPlugin(metrics: GatewayMetrics): ApolloServerPlugin<GatewayContext> {
  return {
    async requestDidStart({ contextValue }) {
      /** Write fields whose error came from the upstream (an UPSTREAM_* or its 401, 403, 422…). */
      const failedUpstream = new Set<string>();
      return {
        async didEncounterErrors({ errors }) {
          for (const error of errors) {
            if (error.path?.length === 1 && unwrapResolverError(error) instanceof UpstreamError) {
              failedUpstream.add(String(error.path[0]));
            }
          }
        },
        async willSendResponse({ document, operationName, request, response }) {
          if (document === undefined) return;
          const fields = writeFields(document, operationName, request.variables);
          if (fields.length === 0) return;
          const { body } = response;
          const errors =
            (body.kind === 'single' ? body.singleResult.errors : body.initialResult.errors) ?? [];
          const { jobWrites, transport } = contextValue.operation;
          const caller = auditCaller(contextValue);
          for (const field of fields) {
            const own = errors.find((e) => e.path?.length === 1 && e.path[0] === field.responseKey);
            let outcome: JobWriteOutcome;
            let errorCode: string | undefined;
            if (own !== undefined) {
              errorCode = codeOf(own);
              const failed = failedUpstream.has(field.responseKey) || FAILED_CODES.has(errorCode);
              outcome = failed ? 'failed' : 'refused';
            } else if (jobWrites.has(field.responseKey)) {
              outcome = 'done';
            } else {
              // Never run: the operation was refused before execution (a limit, validation), or
              // an earlier write of it failed and the rest were not run.
              outcome = 'refused';
              errorCode = errors[0] === undefined ? undefined : codeOf(errors[0]);
            }
            contextValue.logger.info(
              {
                audit: true,
                action: field.action,
                jobId: jobWrites.get(field.responseKey) ?? field.jobId,
                outcome,
                errorCode,
                ...caller,
                transport,
              },
              'audit',
            );
            metrics.jobWrite(field.action, outcome);
          }
        },
      };
    },
  };
}
