// What a query may ask for, checked before anything runs: a query over a limit is rejected with
// QUERY_LIMIT_EXCEEDED and costs the upstream nothing.
//
// - depth, aliases and directives: graphql-armor's validation rules;
// - tokens: graphql-js's own `maxTokens` parse option (armor's token plugin throws from a hook
//   Apollo Server answers with a 500);
// - cost: graphql-query-complexity, because armor's cost limit cannot see arguments, and here the
//   arguments are what matters: `fineTuneJobs(limit: -1)` asks the upstream for every job, so
//   its selection costs as many times as the jobs it may return;
// - upstream calls: graphql-query-complexity again, counting the calls the operation may make
//   (a batch's operations together), so one the run-time cap would stop part way (at
//   limits.maxUpstreamCalls) is refused before its first call.
import type { ApolloServerPlugin, GraphQLRequestContextDidResolveOperation } from '@apollo/server';
import { ApolloArmor } from '@escape.tech/graphql-armor';
import {
  GraphQLError,
  Kind,
  visit,
  type DocumentNode,
  type GraphQLSchema,
  type ValidationContext,
  type ValidationRule,
} from 'graphql';
import { getComplexity, simpleEstimator, type ComplexityEstimator } from 'graphql-query-complexity';
import { LRUCache } from 'lru-cache';
import type { QueryLimits } from '../config.js';
import type { GatewayContext } from '../context.js';
import { limitErrorsOncePlugin } from '../operation/budget.js';
import { ErrorCode, limitError } from '../errors.js';

export type QueryLimitName =
  'depth' | 'aliases' | 'directives' | 'tokens' | 'cost' | 'upstreamCalls' | 'bytes' | 'batch';

/** Levels of arrays and objects a request's variables may nest; none of the schema's inputs needs 5. */
const MAX_VARIABLE_DEPTH = 32;

/**
 * Whether a value nests arrays or objects deeper than `max` (walked without recursion: a 5,000
 * level array is what this guards against). JSON.stringify and other recursive walks of such a
 * value overflow the stack.
 */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: { value: unknown; depth: number }[] = [{ value, depth: 0 }];
  while (stack.length > 0) {
    const { value: item, depth } = stack.pop()!;
    if (item === null || typeof item !== 'object') continue;
    if (depth >= max) return true;
    for (const child of Array.isArray(item) ? item : Object.values(item))
      stack.push({ value: child, depth: depth + 1 });
  }
  return false;
}

/** A document of more than `maxBytes` (whitespace and comments count), refused before parsing. */
export function documentTooLarge(maxBytes: number): GraphQLError {
  return limitExceeded('bytes', `Query document larger than ${maxBytes} bytes.`, { maxBytes });
}

/** A batch of more than `maxBatch` operations, refused before any of them is parsed. */
export function batchTooLarge(maxBatch: number): GraphQLError {
  return limitExceeded('batch', `A batch may hold at most ${maxBatch} operations: send fewer at once.`, {
    maxBatch,
  });
}

/** A query refused for `limit` before it runs: a 400, unless a batch says otherwise (`checkOperation`). */
function limitExceeded(
  limit: QueryLimitName,
  message: string,
  extensions?: Record<string, unknown>,
  httpStatus = 400,
) {
  return limitError(ErrorCode.QUERY_LIMIT_EXCEEDED, limit, message, extensions, httpStatus);
}

/** Reports armor's rejection as ours: a clear message and `extensions.limit`. */
function reject(limit: QueryLimitName) {
  return (context: ValidationContext | null, error: GraphQLError) =>
    context?.reportError(limitExceeded(limit, error.message.replace(/^Syntax Error: /, '')));
}

/**
 * Fields whose size a client chooses, and the argument that chooses it: the job list (`limit`,
 * -1: all of them), a page of the job connection (`first`), and a job's metrics (a page of
 * entries, and one upstream call per job it is asked for).
 */
const SIZED_LISTS: Record<string, Record<string, string>> = {
  Query: { fineTuneJobs: 'limit', fineTuneJobsConnection: 'first' },
  FineTuneJob: { metrics: 'limit' },
};

/** A router's `_entities` (federation.subgraph): each of its representations is a job read by id. */
const ENTITIES = { type: 'Query', field: '_entities', argument: 'representations' };

/**
 * What one upstream call costs in the estimate, on top of what the field returns: a job's
 * metrics under a list of every job is as many calls as the list may hold.
 */
const UPSTREAM_CALL_COST = 10;
/**
 * Fields that make an upstream call each time they are resolved (besides the sized lists): a
 * job by id, and the writes.
 */
const CALLING_FIELDS: Record<string, ReadonlySet<string>> = {
  Query: new Set(['fineTuneJob']),
  Mutation: new Set(['createFineTuneJob', 'stopFineTuneJob', 'cancelFineTuneJob']),
};

/**
 * Fields computed from the page of metrics their parent fetched (the summary): reading the page
 * is what they cost, and the parent counts it once per entry it may hold; their own selection
 * adds nothing, however many of their fields are asked for.
 */
const COMPUTED_FROM_PAGE: Record<string, ReadonlySet<string>> = {
  FineTuneJobMetrics: new Set(['summary']),
};

/**
 * The list size the cost estimate assumes for `limit: -1` (every job): a typical organization's
 * list. An operator who wants such lists cheaper or dearer turns limits.maxCost; the upstream
 * calls such a list may make are estimated at limits.maxJobs.
 */
const UNBOUNDED_LIST_SIZE = 100;

/** What a sized field's argument asks for; `unbounded` where it asks for everything (-1). */
function sizeOf(requested: unknown, unbounded: number): number {
  return typeof requested === 'number' && requested >= 0 ? requested : unbounded;
}

/**
 * A sized field costs one upstream call plus its selection once per item it may return; a
 * field that reads one job costs a call plus its selection.
 */
function sizedListEstimator(): ComplexityEstimator {
  return ({ type, field, args, childComplexity }) => {
    if (COMPUTED_FROM_PAGE[type.name]?.has(field.name)) return 0;
    if (CALLING_FIELDS[type.name]?.has(field.name)) return UPSTREAM_CALL_COST + Math.max(childComplexity, 1);
    const sizeArgument = SIZED_LISTS[type.name]?.[field.name];
    if (sizeArgument === undefined) return undefined;
    const size = sizeOf(args[sizeArgument], UNBOUNDED_LIST_SIZE);
    return UPSTREAM_CALL_COST + size * Math.max(childComplexity, 1);
  };
}

/**
 * The upstream calls an operation may make: one per calling field, its selection's once per
 * item it may return. A list returns at most `maxJobs` jobs (past them it fails, its items
 * unresolved): so many for one without a `limit`, whatever the cost estimate assumes.
 */
function upstreamCallsEstimator(maxJobs: number): ComplexityEstimator {
  return ({ type, field, args, childComplexity }) => {
    if (type.name === ENTITIES.type && field.name === ENTITIES.field) {
      const representations = args[ENTITIES.argument] as unknown;
      return (Array.isArray(representations) ? representations.length : 0) * (1 + childComplexity);
    }
    const sizeArgument = SIZED_LISTS[type.name]?.[field.name];
    if (sizeArgument !== undefined)
      return 1 + Math.min(sizeOf(args[sizeArgument], maxJobs), maxJobs) * childComplexity;
    return (CALLING_FIELDS[type.name]?.has(field.name) ? 1 : 0) + childComplexity;
  };
}

/** What an operation may cost the gateway (limits.maxCost) and the upstream (limits.maxUpstreamCalls). */
interface Estimate {
  cost: number;
  upstreamCalls: number;
}

/** Validation rules, parse options and plugins that enforce the limits. */
export function queryLimitProtection(limits: QueryLimits, fieldSuggestions: boolean) {
  const armor = new ApolloArmor({
    maxDepth: { n: limits.maxDepth, propagateOnRejection: false, onReject: [reject('depth')] },
    maxAliases: { n: limits.maxAliases, propagateOnRejection: false, onReject: [reject('aliases')] },
    maxDirectives: { n: limits.maxDirectives, propagateOnRejection: false, onReject: [reject('directives')] },
    // Replaced by graphql-js's parser limit and graphql-query-complexity (see the top of the file).
    maxTokens: { enabled: false },
    costLimit: { enabled: false },
    blockFieldSuggestion: { enabled: !fieldSuggestions },
  }).protect();

  const costEstimators = [sizedListEstimator(), simpleEstimator({ defaultComplexity: 1 })];
  const callEstimators = [upstreamCallsEstimator(limits.maxJobs)];
  function estimate(
    schema: GraphQLSchema,
    document: DocumentNode,
    variables: Record<string, unknown>,
    operationName: string | null,
  ): Estimate | undefined {
    const options = { schema, query: document, variables, ...(operationName && { operationName }) };
    try {
      return {
        cost: getComplexity({ ...options, estimators: costEstimators }),
        upstreamCalls: getComplexity({ ...options, estimators: callEstimators }),
      };
    } catch {
      // Variables that do not coerce: execution rejects them before any resolver runs.
      return undefined;
    }
  }

  // A document's estimates change only with the variables that size a list: they are remembered
  // per document (Apollo Server reuses parsed documents) and per their values.
  const costChecks = new WeakMap<DocumentNode, Map<string | null, CostCheck>>();
  function costCheck(schema: GraphQLSchema, document: DocumentNode, operationName: string | null): CostCheck {
    let byName = costChecks.get(document);
    if (byName === undefined) costChecks.set(document, (byName = new Map()));
    let check = byName.get(operationName);
    if (check === undefined) {
      check = rememberedCostCheck(document, (variables) =>
        estimate(schema, document, variables, operationName),
      );
      byName.set(operationName, check);
    }
    return check;
  }

  /** The checks of one operation alone; the upstream calls it may make when it passes them. */
  function checkOperation({
    request,
    document,
    schema,
    operationName,
    contextValue,
  }: GraphQLRequestContextDidResolveOperation<GatewayContext>): number {
    // Before anything walks them: the cost check, the sharing key, graphql-js's coercion.
    if (nestsDeeperThan(request.variables, MAX_VARIABLE_DEPTH)) {
      throw new GraphQLError(`Variables nest deeper than ${MAX_VARIABLE_DEPTH} levels.`, {
        extensions: { code: ErrorCode.BAD_USER_INPUT, http: { status: 400 } },
      });
    }
    const estimated = costCheck(schema, document, operationName ?? null)(request.variables ?? {});
    if (estimated === undefined) return 0;
    const { cost, upstreamCalls } = estimated;
    if (cost > limits.maxCost) {
      throw limitExceeded(
        'cost',
        `Query cost limit of ${limits.maxCost} exceeded, found ${cost}. Ask for fewer jobs (a smaller \`limit\`) or fewer fields.`,
        { cost, maxCost: limits.maxCost },
      );
    }
    if (upstreamCalls > limits.maxUpstreamCalls) {
      throw limitExceeded(
        'upstreamCalls',
        `This operation may make ${upstreamCalls} calls to the fine-tune API; one operation may make ${limits.maxUpstreamCalls}. Each job's \`metrics\` is a call, and a list without a \`limit\` may hold ${limits.maxJobs} jobs: give lists with metrics a \`limit\` (a list of ${limits.maxUpstreamCalls - 1} jobs with their metrics is ${limits.maxUpstreamCalls} calls).`,
        { calls: upstreamCalls, max: limits.maxUpstreamCalls },
      );
    }
    // The operations of a batch share one spend: together they stay under the limit.
    const { spend } = contextValue.operation;
    spend.cost += cost;
    if (spend.cost > limits.maxCost) {
      throw limitExceeded(
        'cost',
        `Query cost limit of ${limits.maxCost} exceeded by this batch, found ${spend.cost} for its operations together. Send fewer operations at once, or ask for less.`,
        { cost: spend.cost, maxCost: limits.maxCost },
        // The batch's other operations were answered: its response stays a 200 (a refusal
        // before execution would make it a 400 for all of them).
        200,
      );
    }
    return upstreamCalls;
  }

  // A batch's operations run at once, and their calls count together: each waits until all
  // have been checked (or answered without running), so none makes a call before the batch's
  // calls are known, and all of them are refused when those are too many.
  const checked = new WeakMap<object, (estimatedCalls: number) => void>();
  const costLimit: ApolloServerPlugin<GatewayContext> = {
    async requestDidStart(requestContext) {
      if (!requestContext.requestIsBatched) {
        return { didResolveOperation: async (operation) => void checkOperation(operation) };
      }
      const { spend } = requestContext.contextValue.operation;
      const done = spend.batchOperationStarted();
      checked.set(requestContext, done);
      return {
        async didResolveOperation(operation) {
          let calls = 0;
          try {
            calls = checkOperation(operation);
          } finally {
            done(calls);
          }
          await spend.batchChecked();
          if (spend.estimatedCalls > limits.maxUpstreamCalls) {
            throw limitExceeded(
              'upstreamCalls',
              `This batch's operations together may make ${spend.estimatedCalls} calls to the fine-tune API; one request may make ${limits.maxUpstreamCalls} (each job's \`metrics\` is a call). Send fewer operations at once, or give lists with metrics a smaller \`limit\`.`,
              { calls: spend.estimatedCalls, max: limits.maxUpstreamCalls },
            );
          }
        },
        // Answered without running (a document that does not parse or validate, say).
        async willSendResponse() {
          done(0);
        },
      };
    },
    async unexpectedErrorProcessingRequest({ requestContext }) {
      checked.get(requestContext)?.(0);
    },
  };

  return {
    validationRules: armor.validationRules as ValidationRule[],
    // Armor's declarations name Apollo Server's CommonJS types, ours its ESM ones: same objects.
    plugins: [...(armor.plugins as unknown as ApolloServerPlugin[]), costLimit, limitErrorsOncePlugin()],
    parseOptions: { maxTokens: limits.maxTokens },
    /** The cost check of one document, remembered by the values of its sizing variables. */
    costCheck,
  };
}

/** An operation's estimates for a request's variables (undefined: they do not coerce). */
export type CostCheck = (variables: Record<string, unknown>) => Estimate | undefined;

const SIZE_ARGUMENTS = new Set([
  ...Object.values(SIZED_LISTS).flatMap((fields) => Object.values(fields)),
  ENTITIES.argument,
]);
const REMEMBERED_COSTS = 100;

/**
 * The variables a document's estimates can depend on: those inside a sizing argument (`limit`,
 * `first`, `representations`) and those of directives (`@include(if: $x)` drops a selection).
 */
function costVariables(document: DocumentNode): string[] {
  const names = new Set<string>();
  let inCostArgument = 0;
  visit(document, {
    Argument: {
      enter(node) {
        if (SIZE_ARGUMENTS.has(node.name.value)) inCostArgument += 1;
      },
      leave(node) {
        if (SIZE_ARGUMENTS.has(node.name.value)) inCostArgument -= 1;
      },
    },
    Directive: {
      enter() {
        inCostArgument += 1;
      },
      leave() {
        inCostArgument -= 1;
      },
    },
    Variable(node, _key, parent) {
      const isDefinition = (parent as { kind?: string } | undefined)?.kind === Kind.VARIABLE_DEFINITION;
      if (inCostArgument > 0 && !isDefinition) names.add(node.name.value);
    },
  });
  return [...names];
}

/**
 * Runs `check` once per distinct value of the cost variables (offsets and filters share one).
 * Only an estimate is remembered, never its absence: variables that do not coerce (any of them,
 * sizing or not) say nothing of the document, and the parsed document is shared by every client,
 * so one bad request must not turn the checks off for the next.
 */
function rememberedCostCheck(document: DocumentNode, check: CostCheck): CostCheck {
  const names = costVariables(document);
  // Most documents size their lists with literals: one estimate, and no cache of 100 slots (3.7 KB
  // allocated up front) kept with every parsed document.
  if (names.length === 0) {
    let remembered: Estimate | undefined;
    return (variables) => (remembered ??= check(variables));
  }
  // By the JSON text of those variables' values; values come from clients, so bounded.
  const known = new LRUCache<string, Estimate>({ max: REMEMBERED_COSTS });
  return (variables) => {
    // JSON text, or `undefined` for an absent variable (its default applies, not null).
    const key = names.map((name) => `${JSON.stringify(variables[name])}`).join('\u0000');
    let remembered = known.get(key);
    if (remembered === undefined) {
      remembered = check(variables);
      if (remembered !== undefined) known.set(key, remembered);
    }
    return remembered;
  };
}
