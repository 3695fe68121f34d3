// Fair use per person (rateLimits): each caller has a budget of operations and of upstream calls
// per minute, so one person's runaway script cannot spend the organization's upstream rate limit
// for everyone. The caller is the token's subject when signed in (JWT authentication), else the
// identity of the key it uses (a hash; anonymous callers share the gateway key's). With REDIS_URL
// the counts are the fleet's (rate-limiter-flexible on Redis); while Redis is down each instance
// counts alone, as it does without it.
//
// Operations are counted before they run; upstream calls after, as the attempts the operation
// actually sent (its estimate would overcharge: most loads are answered without a call). So an
// operation runs while the caller has any upstream calls left, and pays for what it spent.
// Refused in `didResolveOperation`: before execution, so with no upstream call, over every
// transport; over HTTP with status 429 and `Retry-After`.
import { HeaderMap, type ApolloServerPlugin } from '@apollo/server';
import { Kind, type OperationDefinitionNode } from 'graphql';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { Logger } from 'pino';
import type { RateLimitSettings } from '../../config.js';
import type { GatewayContext } from '../../context.js';
import { ErrorCode, gatewayError } from '../../errors.js';
import type { FleetRedis } from '../../fleet/redis.js';

const MINUTE_SECONDS = 60;

/**
 * How long a count in Redis may take: a Redis that stops answering (paused, a network partition)
 * must not hold every request; past this, this instance's own count decides, as while it is down.
 */
const STORE_WAIT_MS = 1_000;
const STORE_WAIT = Symbol('Redis did not answer in time');

/** One per-minute budget: in Redis when the fleet has one (in memory while it is down), else in memory. */
function perMinute(points: number, name: string, redis: FleetRedis | undefined) {
  const memory = new RateLimiterMemory({ points, duration: MINUTE_SECONDS });
  if (redis === undefined) return memory;
  const store = new RateLimiterRedis({
    storeClient: redis.client,
    useRedisPackage: true,
    keyPrefix: redis.key('rate', name),
    points,
    duration: MINUTE_SECONDS,
    // Redis is a help, never a dependency: while it is down, this instance counts alone.
    rejectIfRedisNotReady: true,
    insuranceLimiter: memory,
  });
  const bounded = <T>(fromStore: Promise<T>, alone: () => Promise<T>): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<typeof STORE_WAIT>((resolve) => {
      timer = setTimeout(() => resolve(STORE_WAIT), STORE_WAIT_MS);
    });
    return Promise.race([fromStore, late])
      .then((result) => (result === STORE_WAIT ? alone() : (result as T)))
      .finally(() => clearTimeout(timer));
  };
  return {
    consume: (key: string) => bounded(store.consume(key), () => memory.consume(key)),
    get: (key: string) => bounded(store.get(key), () => memory.get(key)),
    penalty: (key: string, points: number) =>
      bounded(store.penalty(key, points), () => memory.penalty(key, points)),
  };
}

/** Introspection (an explorer's schema polls) costs no upstream call: never limited. */
function isIntrospection(operation: OperationDefinitionNode): boolean {
  return operation.selectionSet.selections.every(
    (selection) => selection.kind === Kind.FIELD && selection.name.value.startsWith('__'),
  );
}

/** Who is limited: the signed-in person, else the key (its hash); none without a credential. */
function callerOf(context: GatewayContext): string | undefined {
  const subject = context.operation.caller.subject;
  if (subject !== undefined) return `subject:${subject}`;
  const identity = context.credentialIdentity;
  return identity === undefined ? undefined : `key:${identity}`;
}

function rateLimited(limit: string, perMinuteMax: number, msBeforeNext: number) {
  // Whole seconds, at least one, as `Retry-After` says it.
  const retryAfter = Math.max(1, Math.ceil(msBeforeNext / 1000));
  return gatewayError(
    ErrorCode.RATE_LIMITED,
    `Too many ${limit === 'operationsPerMinute' ? 'operations' : 'upstream calls'} from you: at most ${perMinuteMax} a minute (rateLimits.${limit}). Retry after ${retryAfter} s.`,
    {
      limit,
      max: perMinuteMax,
      retryAfter,
      http: { status: 429, headers: new HeaderMap([['retry-after', String(retryAfter)]]) },
    },
  );
}

export function rateLimitsPlugin(
  settings: RateLimitSettings,
  redis: FleetRedis | undefined,
  logger: Logger,
): ApolloServerPlugin<GatewayContext> {
  const operations = perMinute(settings.operationsPerMinute, 'operations', redis);
  const upstreamCalls = perMinute(settings.upstreamCallsPerMinute, 'upstream-calls', redis);
  return {
    async requestDidStart() {
      let charged: string | undefined;
      return {
        async didResolveOperation({ operation, contextValue }) {
          const caller = callerOf(contextValue);
          if (caller === undefined || operation === undefined || isIntrospection(operation)) return;
          const spent = await upstreamCalls.get(caller);
          if (spent !== null && spent.remainingPoints <= 0) {
            throw rateLimited('upstreamCallsPerMinute', settings.upstreamCallsPerMinute, spent.msBeforeNext);
          }
          try {
            await operations.consume(caller);
          } catch (refusal) {
            if (!(refusal instanceof RateLimiterRes)) throw refusal;
            throw rateLimited('operationsPerMinute', settings.operationsPerMinute, refusal.msBeforeNext);
          }
          charged = caller;
        },
        async willSendResponse({ contextValue }) {
          const attempts = contextValue.operation.upstreamCalls.attempts;
          if (charged === undefined || attempts === 0) return;
          // Not waited for: the answer goes out now; a failure to count is logged, never the client's.
          void upstreamCalls
            .penalty(charged, attempts)
            .catch((error: unknown) => logger.warn({ err: error }, 'upstream calls not counted'));
        },
      };
    },
  };
}
