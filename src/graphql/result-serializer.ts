// Apollo Server's `stringifyResult`: the same JSON text as its default (`JSON.stringify` and a
// newline), except that the text of a result's `data` is written once per data object. Answers
// shared between identical operations (in flight, or kept with CACHE_TTL_MS) carry the same data
// object in each response, with extensions of their own: each response is then one
// concatenation, not a serialization of every job again.
import type { FormattedExecutionResult } from 'graphql';

type Data = NonNullable<FormattedExecutionResult['data']>;

export class ResultSerializer {
  private readonly written = new WeakMap<Data, string>();

  /** The JSON text of `data`, written on first use and kept as long as the object lives. */
  data(data: Data): string {
    let text = this.written.get(data);
    if (text === undefined) {
      text = JSON.stringify(data);
      this.written.set(data, text);
    }
    return text;
  }

  /** A response body, with its keys in the result's order (errors, data, extensions). */
  readonly stringify = (result: FormattedExecutionResult): string => {
    let text = '{';
    for (const [key, value] of Object.entries(result)) {
      if (value === undefined) continue;
      if (text.length > 1) text += ',';
      const json = key === 'data' && value !== null ? this.data(value as Data) : JSON.stringify(value);
      text += `${JSON.stringify(key)}:${json}`;
    }
    return `${text}}\n`;
  };
}
