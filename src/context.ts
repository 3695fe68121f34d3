// The per-request context every resolver receives: who is calling (the API key to use), a
// request id and logger, and the loaders, built fresh for each request.
import type { KyInstance } from 'ky';
import type { Logger } from 'pino';
import { ErrorCode, gatewayError } from './errors.js';
import {
  createFineTuneJobLoaders,
  type FineTuneJobLoaders,
  type LoaderSettings,
} from './loaders/fine-tune-jobs.js';
import { FineTuneApiClient } from './upstream/client.js';
import { FineTuneJobWrites, type JobWriteSettings } from './upstream/job-writes.js';

export interface GatewayContext {
  requestId: string;
  logger: Logger;
  /**
   * The loaders for this request. Reading it without an API key throws UNAUTHENTICATED, so a
   * resolver that needs the upstream fails before any call, while introspection still works.
   */
  readonly loaders: FineTuneJobLoaders;
  /** Create, stop and cancel, with the never-duplicate, never-lose retries; same key check. */
  readonly jobWrites: FineTuneJobWrites;
}

export interface ContextDependencies {
  http: KyInstance;
  /** The gateway's own key, used when the client sends none. */
  serverApiKey: string | undefined;
  logger: Logger;
  loaderSettings: LoaderSettings;
  jobWriteSettings: JobWriteSettings;
}

export interface IncomingRequest {
  authorization: string | undefined;
  requestId: string;
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** The API key for this request: the client's bearer token, else the server's key. */
function resolveApiKey(authorization: string | undefined, serverApiKey: string | undefined) {
  const header = authorization?.trim();
  if (!header) {
    return serverApiKey === undefined
      ? { error: 'No API key: send `Authorization: Bearer <your Archetype AI API key>`.' }
      : { apiKey: serverApiKey };
  }
  const match = BEARER.exec(header);
  if (!match) return { error: 'The Authorization header must be `Bearer <your Archetype AI API key>`.' };
  return { apiKey: match[1]! };
}

export function createContext(deps: ContextDependencies, incoming: IncomingRequest): GatewayContext {
  const { requestId } = incoming;
  const logger = deps.logger.child({ requestId });
  const credential = resolveApiKey(incoming.authorization, deps.serverApiKey);
  let api: FineTuneApiClient | undefined;
  let loaders: FineTuneJobLoaders | undefined;
  let jobWrites: FineTuneJobWrites | undefined;

  function client(): FineTuneApiClient {
    if (credential.apiKey === undefined) {
      throw gatewayError(ErrorCode.UNAUTHENTICATED, credential.error);
    }
    api ??= new FineTuneApiClient(deps.http, credential.apiKey);
    return api;
  }

  return {
    requestId,
    logger,
    get loaders() {
      loaders ??= createFineTuneJobLoaders(client(), deps.loaderSettings);
      return loaders;
    },
    get jobWrites() {
      jobWrites ??= new FineTuneJobWrites(client(), deps.jobWriteSettings, logger);
      return jobWrites;
    },
  };
}
