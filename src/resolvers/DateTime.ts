// DateTime keeps the upstream's RFC 3339 string as it is: converting to a JS Date would cut
// microseconds (`.421000Z` → `.421Z`), and the upstream's precision is the user's data.
import { GraphQLError, GraphQLScalarType, Kind } from 'graphql';

const RFC_3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
// Timestamps every date parser reads: the form the upstream sends, fields in range, days to
// 28. `Date.parse` cost about 450 ns a value (most of a page of jobs' DateTime time), so only
// the rest (days 29 to 31, other separators, long fractions) pays for it.
const PLAINLY_VALID =
  /^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1\d|2[0-8])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,9})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$/;

/** An RFC 3339 timestamp that `Date.parse` accepts. */
export function isDateTime(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  return PLAINLY_VALID.test(value) || (RFC_3339.test(value) && !Number.isNaN(Date.parse(value)));
}

function checked(value: unknown): string {
  if (!isDateTime(value)) {
    throw new GraphQLError(`DateTime must be an RFC 3339 string, got ${JSON.stringify(value)}`);
  }
  return value;
}

export const DateTime = new GraphQLScalarType<string, string>({
  name: 'DateTime',
  description: 'An RFC 3339 timestamp string, kept with the precision the upstream gave.',
  serialize: checked,
  parseValue: checked,
  parseLiteral(ast) {
    if (ast.kind !== Kind.STRING) throw new GraphQLError('DateTime must be a string literal');
    return checked(ast.value);
  },
});
