// Keeps API keys out of anything a person can read: logs, error messages, responses.

// Token characters of RFC 6750; short words (as in `Bearer <API key>`) are not tokens.
const BEARER = /Bearer\s+[\w.~+/=-]{6,}/gi;

/** Replaces every occurrence of the given secrets, and any bearer token, with `[REDACTED]`. */
export function redactSecrets(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length > 0) out = out.split(secret).join('[REDACTED]');
  }
  return out.replace(BEARER, 'Bearer [REDACTED]');
}
