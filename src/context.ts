// The per-request context every resolver receives: who is calling (the identity of the key it
// uses), a request id and logger, the loaders and job writes, the live streams, and one handle on
// the operation's own state (src/operation/operation.ts), built fresh for each request.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { isJwtShaped, type JwtAuthentication } from './auth/jwt-authentication.js';
import { ErrorCode, gatewayError } from './errors.js';
import { FineTuneJobWrites } from './fine-tune-jobs/job-writes.js';
import { createFineTuneJobLoaders, type FineTuneJobLoaders } from './loaders/fine-tune-jobs.js';
import type { GatewayMetrics } from './observability/metrics.js';
import { RequestSpend } from './operation/budget.js';
import {
  OperationState,
  type Caller,
  type OperationSettings,
  type Transport,
} from './operation/operation.js';
import { UpstreamCalls } from './operation/upstream-calls.js';
import type { LiveJobPollers, LiveJobs } from './subscriptions/live-jobs.js';
import { FineTuneApiClient } from './upstream/client.js';
import type { UpstreamHttp } from './upstream/http.js';

export interface GatewayContext {
  requestId: string;
  logger: Logger;
  /**
   * Who the operation's answer belongs to, for sharing it (a hash of the API key it uses, never
   * the key); undefined when the request has no usable key.
   */
  readonly credentialIdentity: string | undefined;
  /**
   * The loaders for this request. Reading it without an API key throws UNAUTHENTICATED, so a
   * resolver that needs the upstream fails before any call, while introspection still works.
   */
  readonly loaders: FineTuneJobLoaders;
  /**
   * Create, stop and cancel, with the never-duplicate, never-lose retries; same key check, and
   * UNAUTHENTICATED for a client without a key of its own unless security.anonymousWrites.
   */
  readonly jobWrites: FineTuneJobWrites;
  /** Live streams for subscriptions, shared per key identity; same key check as `loaders`. */
  readonly liveJobs: LiveJobs;
  /**
   * This operation's own state (its transport, budget, record of upstream calls, span, how its
   * answer was shared, a subscription's stream), kept by the modules that own each concern.
   */
  readonly operation: OperationState;
}

export interface ContextDependencies {
  http: UpstreamHttp;
  metrics: GatewayMetrics;
  /** The gateway's own key, used when the client sends none. */
  serverApiKey: string | undefined;
  logger: Logger;
  /** What each operation's state is built from (its budget, its record of upstream calls). */
  operationSettings: OperationSettings;
  /** The gateway's shared pollers, for subscriptions. */
  liveJobPollers?: LiveJobPollers;
  /** A client without a key of its own may create, stop and cancel with the gateway's key. */
  anonymousWrites: boolean;
  /** Host names whose requests may act with the gateway's key (lower case, no port). */
  allowedHosts: ReadonlySet<string>;
  /** JWT authentication (AUTH_* set): tokens verified; the gateway's key no longer serves anonymous callers. */
  jwt?: JwtAuthentication | undefined;
}

export interface IncomingRequest {
  authorization: string | undefined;
  requestId: string;
  transport: Transport;
  /** The request's `Host` (HTTP, or the WebSocket upgrade), as the client sent it. */
  host: string | undefined;
  /** The request's logger (Fastify's, bound to the request id); a child of the gateway's otherwise. */
  logger?: Logger;
}

/** The identity of a key for sharing: a hash, so the key itself is never a map key. */
export function credentialIdentity(apiKey: string): string {
  return createHash('sha256').update(apiKey).digest('base64');
}

// A usable key: RFC 6750 token characters only (anything else, control characters or non-ASCII,
// could not travel in an HTTP header), and at most MAX_KEY_BYTES of them. Over WebSocket
// connection params nothing else stops a key; a longer one gets 431 from the upstream (Node's
// headers stop at 16 KiB), poll after poll. 8 KiB leaves room for the JWTs that will come in
// the same header.
const BEARER = /^Bearer\s+([A-Za-z0-9\-._~+/]+=*)\s*$/i;
const MAX_KEY_BYTES = 8 * 1024;

type Credential = { apiKey: string; own: boolean; caller?: Caller } | { error: string };

/** `api.example.com:4000` → `api.example.com`; `[::1]:4000` → `::1`; lower case. */
export function hostName(host: string | undefined): string | undefined {
  if (host === undefined || host === '') return undefined;
  try {
    return new URL(`http://${host}/`).hostname.replace(/^\[|\]$/g, '').toLowerCase();
  } catch {
    return undefined;
  }
}

/**
 * The API key for this request: the organization's key for a verified token (JWT authentication
 * on), the client's own bearer key, else the gateway's key. The gateway's key serves anonymous
 * callers only without JWT authentication, and only on one of its own host names: a web page
 * under another name that resolves to the gateway (DNS rebinding) is same-origin to the browser,
 * and would otherwise act with the gateway's key.
 */
async function resolveApiKey(incoming: IncomingRequest, deps: ContextDependencies): Promise<Credential> {
  const header = incoming.authorization?.trim();
  const { jwt } = deps;
  const expected = jwt
    ? `\`Authorization: Bearer <a token from your identity provider${jwt.keyPassThrough ? ', or your Archetype AI API key' : ''}>\``
    : '`Authorization: Bearer <your Archetype AI API key>`';
  if (header) {
    const match = BEARER.exec(header);
    if (!match) return { error: `The Authorization header must be ${expected}.` };
    const bearer = match[1]!;
    if (bearer.length > MAX_KEY_BYTES) {
      return { error: `The API key is longer than any the gateway accepts (${MAX_KEY_BYTES} bytes).` };
    }
    if (jwt === undefined) return { apiKey: bearer, own: true };
    // Shaped like a JWT: verified as one, never sent upstream as a key, even when it does not decode.
    if (isJwtShaped(bearer)) {
      const verified = await jwt.verify(bearer);
      if ('error' in verified) return verified;
      const { apiKey, subject, organization, scopes } = verified.person;
      return {
        apiKey,
        own: true,
        caller: {
          ...(subject !== undefined && { subject }),
          ...(organization !== undefined && { organization }),
          scopes,
        },
      };
    }
    if (!jwt.keyPassThrough) return { error: `API keys are not accepted here: send ${expected}.` };
    return { apiKey: bearer, own: true };
  }
  if (jwt !== undefined) return { error: `No credential: send ${expected}.` };
  if (deps.serverApiKey === undefined) return { error: `No API key: send ${expected}.` };
  const name = hostName(incoming.host);
  if (name === undefined || !deps.allowedHosts.has(name)) {
    return {
      error: `No API key, and the gateway's own key serves only its own host names (security.allowedHosts): send ${expected}.`,
    };
  }
  return { apiKey: deps.serverApiKey, own: false };
}

/**
 * A class, not an object literal: Apollo Server copies the context's own properties per
 * operation, which would run an own getter eagerly; getters on the prototype stay lazy.
 */
class RequestContext implements GatewayContext {
  // Plain fields (not #private): Apollo's copy of the context must carry them. Eager ones are
  // shared by every copy (each operation of a batch gets one), lazy ones belong to one copy.
  private readonly spend = new RequestSpend();
  private operationOfCopy: OperationState | undefined;
  /** The client and loaders of one operation's record (a subscription's event has its own). */
  private loadersOfRun:
    { calls: UpstreamCalls; api: FineTuneApiClient; loaders?: FineTuneJobLoaders } | undefined;
  private jobWritesOfRequest: FineTuneJobWrites | undefined;
  private identityOfKey: string | undefined;

  constructor(
    readonly requestId: string,
    private readonly transport: Transport,
    readonly logger: Logger,
    private readonly credential: Credential,
    private readonly deps: ContextDependencies,
  ) {}

  get operation(): OperationState {
    this.operationOfCopy ??= new OperationState(
      this.transport,
      this.deps.operationSettings,
      'apiKey' in this.credential ? [this.credential.apiKey] : [],
      this.spend,
      'apiKey' in this.credential ? this.credential.caller : undefined,
    );
    return this.operationOfCopy;
  }

  /** This operation's client: its calls go to the operation's record (budget, extensions.upstream, spans). */
  private run() {
    if ('error' in this.credential) throw gatewayError(ErrorCode.UNAUTHENTICATED, this.credential.error);
    const calls = this.operation.upstreamCalls;
    if (this.loadersOfRun?.calls !== calls) {
      const api = new FineTuneApiClient(this.deps.http, {
        apiKey: this.credential.apiKey,
        requestId: this.requestId,
        recorder: calls,
      });
      this.loadersOfRun = { calls, api };
    }
    return this.loadersOfRun;
  }

  get credentialIdentity(): string | undefined {
    if (!('apiKey' in this.credential)) return undefined;
    this.identityOfKey ??= credentialIdentity(this.credential.apiKey);
    return this.identityOfKey;
  }

  get loaders(): FineTuneJobLoaders {
    const run = this.run();
    run.loaders ??= createFineTuneJobLoaders(run.api, this.deps.metrics, this.operation.budget, run.calls);
    return run.loaders;
  }

  get liveJobs(): LiveJobs {
    const pollers = this.deps.liveJobPollers;
    if (pollers === undefined) throw new Error('this context serves no subscriptions');
    if ('error' in this.credential) throw gatewayError(ErrorCode.UNAUTHENTICATED, this.credential.error);
    const { apiKey } = this.credential;
    const { metrics, tracing } = this.deps.operationSettings;
    // The pollers outlive this request, so they get a client of their own: their calls are
    // recorded for the metrics and spans (a child of the poll's), no operation pays for them.
    const recorder = new UpstreamCalls({
      metrics,
      keepEntries: false,
      secrets: [apiKey],
      ...(tracing && { tracing }),
    });
    // Its polls are linked to this operation's span (tracing on).
    return pollers.forKey(
      new FineTuneApiClient(this.deps.http, { apiKey, requestId: this.requestId, recorder }),
      this.credentialIdentity!,
      this.operation.span,
    );
  }

  get jobWrites(): FineTuneJobWrites {
    // Anonymous access reads: a write with the gateway's key needs the operator's consent.
    if ('apiKey' in this.credential && !this.credential.own && !this.deps.anonymousWrites) {
      throw gatewayError(
        ErrorCode.UNAUTHENTICATED,
        "Creating, stopping and cancelling jobs needs your own key: send `Authorization: Bearer <your Archetype AI API key>` (the gateway's own key only reads).",
      );
    }
    this.jobWritesOfRequest ??= new FineTuneJobWrites(
      this.run().api,
      this.deps.http.retryPolicy,
      this.logger,
    );
    return this.jobWritesOfRequest;
  }
}

/** Async: a token is verified (its keys perhaps fetched) before the context is built. */
export async function createContext(
  deps: ContextDependencies,
  incoming: IncomingRequest,
): Promise<GatewayContext> {
  return new RequestContext(
    incoming.requestId,
    incoming.transport,
    incoming.logger ?? deps.logger.child({ requestId: incoming.requestId }),
    await resolveApiKey(incoming, deps),
    deps,
  );
}
