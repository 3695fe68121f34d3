// Opaque cursors for job connections. A cursor is the upstream offset just after its job, in
// base64url, so paging is one upstream call per page. Clients must treat cursors as opaque: the
// encoding may change, and a cursor only means something for the same filter.
import { ErrorCode, gatewayError } from '../errors.js';

const PREFIX = 'fine-tune-job:';
// Far beyond any real list; keeps an invented offset from becoming a huge number upstream.
const MAX_OFFSET = 1_000_000_000;

/** The cursor of the job at `index` (0-based) of the whole list: the offset that follows it. */
export function jobCursor(index: number): string {
  return Buffer.from(`${PREFIX}${index + 1}`, 'utf8').toString('base64url');
}

/** The offset to continue after `cursor`; BAD_USER_INPUT for anything this gateway did not issue. */
export function offsetAfter(cursor: string | null | undefined): number {
  if (cursor === null || cursor === undefined) return 0;
  const decoded = /^[\w-]{1,64}$/.test(cursor) ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
  const match = /^fine-tune-job:(\d{1,10})$/.exec(decoded);
  const offset = match ? Number(match[1]) : NaN;
  if (!(offset >= 1 && offset <= MAX_OFFSET)) {
    throw gatewayError(
      ErrorCode.BAD_USER_INPUT,
      'after is not a cursor of this list: pass an edge `cursor` or `pageInfo.endCursor` as given',
      { argument: 'after' },
    );
  }
  return offset;
}
