// JWT authentication: a bearer token from the company's identity provider, verified against its
// JWKS (jose), and the organization key its person acts with. No client holds that key.
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import type { Logger } from 'pino';
import type { AuthSettings, IdentityProvider } from '../config.js';

/** Three dot-separated base64url parts (the signature may be empty, as in `alg: none`). */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

export function isJwtShaped(bearer: string): boolean {
  return JWT_SHAPE.test(bearer);
}

/** A verified person: who they are, and the organization key they act with. */
export interface Person {
  subject: string | undefined;
  /** The claim value that chose the key (undefined: the gateway's own key). */
  organization: string | undefined;
  apiKey: string;
  /** The token's scopes, for the schema's `@requiresScopes` (src/graphql/plugins/scope-policies.ts). */
  scopes: string[];
}

export type Verified = { person: Person } | { error: string };

// jose's key set: cached keys; an unknown `kid` fetches again, at most once per cooldown, so a
// rotated key is honoured within a minute and a flood of made-up kids costs one fetch per 30 s.
const JWKS_COOLDOWN_MS = 30_000;
const JWKS_MAX_AGE_MS = 10 * 60_000;
const JWKS_TIMEOUT_MS = 5_000;

/** jose failed to fetch the keys (unreachable, not 200, not JSON, too slow), not the token. */
function isFetchFailure(error: unknown): boolean {
  // A token's own faults are subclasses of JOSEError; jose fails a fetch with JOSEError itself,
  // a timeout, an invalid set, or fetch's own error.
  if (!(error instanceof errors.JOSEError)) return true;
  return (
    error.constructor === errors.JOSEError ||
    error instanceof errors.JWKSTimeout ||
    error instanceof errors.JWKSInvalid
  );
}

export class JwtAuthentication {
  private readonly remote;

  constructor(
    private readonly provider: IdentityProvider,
    private readonly settings: AuthSettings,
    /** The gateway's ATAI_API_KEY: the key of a single organization's people. */
    private readonly serverApiKey: string | undefined,
    private readonly logger: Logger,
  ) {
    this.remote = createRemoteJWKSet(provider.jwksUrl, {
      cooldownDuration: JWKS_COOLDOWN_MS,
      cacheMaxAge: JWKS_MAX_AGE_MS,
      timeoutDuration: JWKS_TIMEOUT_MS,
    });
  }

  /**
   * jose's remote set, except that when the keys are due for a refetch (10 minutes) and the
   * provider cannot be reached, the keys last fetched keep verifying.
   */
  private readonly keys: JWTVerifyGetKey = async (header, token) => {
    try {
      return await this.remote(header, token);
    } catch (error) {
      const last = this.remote.jwks();
      if (last === undefined || !isFetchFailure(error)) throw error;
      this.warnFetchFailed(error);
      return createLocalJWKSet(last)(header, token);
    }
  };

  private warnFetchFailed(error: unknown): void {
    this.logger.warn(
      { jwksUrl: this.provider.jwksUrl.href, reason: error instanceof Error ? error.message : String(error) },
      "the identity provider's keys (AUTH_JWKS_URL) could not be fetched",
    );
  }

  /** Whether a bearer value that is not a JWT may still be an API key. */
  get keyPassThrough(): boolean {
    return this.settings.keyPassThrough;
  }

  /** Never throws; the messages never quote the token. */
  async verify(token: string): Promise<Verified> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.keys, {
        issuer: this.provider.issuer,
        audience: this.provider.audience,
        algorithms: this.settings.algorithms,
        clockTolerance: this.settings.clockToleranceSeconds,
      }));
    } catch (error) {
      return { error: `The token was refused: ${this.reason(error)}.` };
    }
    const apiKey = this.keyFor(payload);
    if ('error' in apiKey) return apiKey;
    return {
      person: {
        subject: typeof payload.sub === 'string' ? payload.sub : undefined,
        organization: apiKey.organization,
        apiKey: apiKey.key,
        scopes: this.scopesOf(payload),
      },
    };
  }

  /** `scope: "a b"` (OAuth 2) or `scp: ["a", "b"]` (Entra ID, Okta), or the configured claim. */
  private scopesOf(payload: JWTPayload): string[] {
    const name = this.settings.scopesClaim ?? (payload.scope !== undefined ? 'scope' : 'scp');
    const claim = payload[name];
    if (typeof claim === 'string') return claim.split(/\s+/).filter((s) => s !== '');
    return Array.isArray(claim) ? claim.filter((s): s is string => typeof s === 'string') : [];
  }

  /** The organization's key: from the claim's mapping, or the gateway's own with no mapping. */
  private keyFor(payload: JWTPayload): { key: string; organization?: string } | { error: string } {
    const organizations = this.settings.organizations;
    if (organizations === undefined) {
      if (this.serverApiKey === undefined) {
        return {
          error: 'The token is valid, but the gateway has no organization key (ATAI_API_KEY) to act with.',
        };
      }
      return { key: this.serverApiKey };
    }
    const claim = payload[organizations.claim];
    const values = (Array.isArray(claim) ? claim : [claim]).filter((v): v is string => typeof v === 'string');
    const mapped = [...new Set(values.filter((v) => Object.hasOwn(organizations.keys, v)))];
    if (mapped.length === 1) return { key: organizations.keys[mapped[0]!]!, organization: mapped[0]! };
    return {
      error:
        mapped.length === 0
          ? `The token is valid, but its \`${organizations.claim}\` claim names no organization this gateway acts for.`
          : `The token's \`${organizations.claim}\` claim names several organizations this gateway acts for; it must name one.`,
    };
  }

  /** What went wrong, in words that never quote the token. */
  private reason(error: unknown): string {
    if (error instanceof errors.JWTExpired) return 'it has expired';
    if (error instanceof errors.JWTClaimValidationFailed) {
      if (error.claim === 'nbf') return 'it is not yet valid';
      if (error.claim === 'iss') return 'it is from another issuer';
      if (error.claim === 'aud') return 'it is for another audience';
      return `its \`${error.claim}\` claim is invalid`;
    }
    if (error instanceof errors.JOSEAlgNotAllowed) return 'its algorithm is not allowed';
    if (error instanceof errors.JWSSignatureVerificationFailed) return 'its signature does not verify';
    if (error instanceof errors.JWKSNoMatchingKey) return "no key of the identity provider's signs it";
    if (!isFetchFailure(error)) return 'it is not a valid JWT';
    this.warnFetchFailed(error);
    return "the identity provider's keys could not be fetched";
  }
}
