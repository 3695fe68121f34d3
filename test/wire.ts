// A GraphQL request exactly as a client sends it, and checks on what comes back over the wire
// (the raw text, so tests can see everything a client could).
import { expect } from 'vitest';

export interface WireResponse {
  status: number;
  contentType: string | null;
  text: string;
  body: {
    data?: Record<string, unknown> | null;
    errors?: { message: string; path?: unknown[]; extensions?: Record<string, unknown> }[];
  };
}

export async function postGraphQL(
  url: string,
  document: string,
  variables: Record<string, unknown> | undefined,
  authorization: string | null,
): Promise<WireResponse> {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(authorization !== null && { authorization }),
    },
    body: JSON.stringify({ query: document, variables }),
  });
  const text = await response.text();
  let body: WireResponse['body'] = {};
  try {
    body = JSON.parse(text) as WireResponse['body'];
  } catch {
    // Left empty; expectWellFormed reports it with the text.
  }
  return { status: response.status, contentType: response.headers.get('content-type'), text, body };
}

/** The codes a client can see (src/errors.ts, plus Apollo's own for bad documents). */
export const KNOWN_CODES = new Set([
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'BAD_USER_INPUT',
  'NOT_FOUND',
  'CONFLICT',
  'UPSTREAM_RATE_LIMITED',
  'UPSTREAM_UNAVAILABLE',
  'UPSTREAM_TIMEOUT',
  'UPSTREAM_BAD_RESPONSE',
  'QUERY_LIMIT_EXCEEDED',
  'SUBSCRIPTION_LIMIT_EXCEEDED',
  'PERSISTED_QUERY_NOT_IN_LIST',
  'OPERATION_RESOLUTION_FAILURE',
  'GRAPHQL_VALIDATION_FAILED',
  'GRAPHQL_PARSE_FAILED',
]);

/**
 * A well-formed GraphQL response: JSON, with data or errors, every error with a message and a
 * known code, never a masked internal error or a stack.
 */
export function expectWellFormed(response: WireResponse): void {
  const shown = `${response.status} ${response.contentType}\n${response.text}`;
  expect(response.contentType, shown).toMatch(/^application\/(graphql-response\+)?json/);
  expect('data' in response.body || 'errors' in response.body, shown).toBe(true);
  expect([200, 400], shown).toContain(response.status);
  for (const error of response.body.errors ?? []) {
    expect(typeof error.message, shown).toBe('string');
    expect(KNOWN_CODES.has(String(error.extensions?.code)), shown).toBe(true);
    expect(error.extensions?.stacktrace, shown).toBeUndefined();
  }
  expect(response.text, shown).not.toMatch(/\n\s+at .+:\d+:\d+/);
}
