// Argument checks shared by the resolvers: done before any upstream call, each failure a
// BAD_USER_INPUT that names the argument; and where a field stands in the response.
import { responsePathAsArray, type GraphQLResolveInfo } from 'graphql';
import { ErrorCode, gatewayError } from '../errors.js';

/** A field's place in the response (`a`, `_entities.3`): the operation budget counts each once. */
export function pathOf(info: GraphQLResolveInfo): string {
  return responsePathAsArray(info.path).join('.');
}

/**
 * The documented range of a job id in paths; anything else cannot exist upstream. `.` and `..`
 * are dot segments: any URL normaliser on the way drops them, and the call reaches another route.
 */
export function checkJobId(id: string): void {
  if (id.length < 1 || id.length > 64) {
    throw gatewayError(ErrorCode.BAD_USER_INPUT, 'id must be 1 to 64 characters long', { argument: 'id' });
  }
  // A lone surrogate is no character: no URL can carry it (encodeURIComponent throws).
  if (/\p{Surrogate}/u.test(id)) {
    throw gatewayError(ErrorCode.BAD_USER_INPUT, 'id must be valid Unicode text', { argument: 'id' });
  }
  if (id === '.' || id === '..') {
    throw gatewayError(ErrorCode.BAD_USER_INPUT, 'id cannot be `.` or `..`: no URL path can carry it', {
      argument: 'id',
    });
  }
}

/** `limit` (-1 for all) and `offset` as the upstream takes them; null means the default. */
export function checkPage(args: { limit?: number | null; offset?: number | null }): {
  limit: number;
  offset: number;
} {
  const limit = args.limit ?? -1;
  const offset = args.offset ?? 0;
  if (limit < -1) {
    throw gatewayError(ErrorCode.BAD_USER_INPUT, 'limit must be -1 (all) or a count of 0 or more', {
      argument: 'limit',
    });
  }
  if (offset < 0) {
    throw gatewayError(ErrorCode.BAD_USER_INPUT, 'offset must be 0 or more', { argument: 'offset' });
  }
  return { limit, offset };
}
