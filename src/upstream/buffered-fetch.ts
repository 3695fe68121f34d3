// The `fetch` ky is given: one HTTP request over undici's `request` on a keep-alive pool, its
// whole body read before it resolves. Measured (CPU per call of a page of 50 jobs, Node 20;
// bench/README.md): ky on Node's fetch 1,040 µs, on undici's fetch 961 µs, on this 550 µs;
// undici's `request` alone 239 µs. Reading the body here also makes ky's `timeout` bound the
// whole attempt, body included (over Node's fetch it stops at the response headers).
import type { Dispatcher } from 'undici';

/** The upstream answered with a status HTTP gives no meaning (below 200 or past 599). */
export class UnexpectedStatusError extends Error {
  override readonly name = 'UnexpectedStatusError';

  constructor(readonly status: number) {
    super(`the upstream answered with status ${status}`);
  }
}

/**
 * A Response whose body has already been read, kept as text: `text()` and `json()` answer at
 * once and `clone()` is a copy of the text, with no stream behind any of them.
 */
export class BufferedResponse extends Response {
  readonly #text: string;

  constructor(text: string, init: ResponseInit) {
    super(null, init);
    this.#text = text;
  }

  // Properties, as the DOM types declare them (they are methods on Response.prototype).
  override readonly text = (): Promise<string> => Promise.resolve(this.#text);

  override readonly json = (): Promise<unknown> => this.text().then((text) => JSON.parse(text) as unknown);

  override readonly clone = (): BufferedResponse =>
    new BufferedResponse(this.#text, {
      status: this.status,
      statusText: this.statusText,
      headers: this.headers,
    });
}

function headersOf(request: Request): Record<string, string> {
  const headers: Record<string, string> = {};
  request.headers.forEach((value, name) => (headers[name] = value));
  return headers;
}

function responseHeaders(raw: Dispatcher.ResponseData['headers']): [string, string][] {
  const headers: [string, string][] = [];
  for (const [name, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const item of value) headers.push([name, item]);
    else headers.push([name, value]);
  }
  return headers;
}

/**
 * A fetch over `dispatcher`: URL, method, headers, body and signal of ky's Request are sent as
 * they are; the answer comes back as a BufferedResponse. Errors are undici's own (its `code`
 * names the socket failure), or the signal's reason once ky aborts.
 */
export function bufferedFetch(dispatcher: Dispatcher) {
  return async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    // Writes only: ky has put the JSON body in the Request, readable once.
    const body = request.body === null ? undefined : await request.text();
    const answer = await dispatcher.request({
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method: request.method as Dispatcher.HttpMethod,
      headers: headersOf(request),
      body,
      signal: request.signal,
    });
    const text = await answer.body.text();
    // A Response cannot carry such a status; ky would report the RangeError as a network failure.
    if (answer.statusCode < 200 || answer.statusCode > 599)
      throw new UnexpectedStatusError(answer.statusCode);
    return new BufferedResponse(text, {
      status: answer.statusCode,
      headers: responseHeaders(answer.headers),
    });
  };
}
