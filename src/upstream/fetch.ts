// The transport under ky: a `fetch` built on undici's `request` over a keep-alive connection
// pool. ky still does timeouts, retries and HTTP errors; this only skips the web-stream
// machinery the global fetch runs per call, which showed up as a large share of a profile.
import { Agent, request, type Dispatcher } from 'undici';

// Statuses whose responses have no body; `new Response` refuses one for them.
const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);

export function createUpstreamFetch(): typeof fetch {
  const dispatcher = new Agent({ keepAliveTimeout: 30_000, connections: 256 });

  return async (input, init) => {
    const outgoing = input instanceof Request && init === undefined ? input : new Request(input, init);
    const body = outgoing.body === null ? undefined : Buffer.from(await outgoing.arrayBuffer());
    let bytes: ArrayBuffer;
    let answer: Dispatcher.ResponseData;
    try {
      answer = await request(outgoing.url, {
        method: outgoing.method as Dispatcher.HttpMethod,
        headers: Object.fromEntries(outgoing.headers),
        body,
        signal: outgoing.signal,
        dispatcher,
      });
      bytes = await answer.body.arrayBuffer();
    } catch (error) {
      // As fetch does: an abort rejects with the signal's reason, anything else is a TypeError
      // whose cause names the socket error (ECONNREFUSED, …).
      if (outgoing.signal.aborted) throw outgoing.signal.reason;
      throw new TypeError('fetch failed', { cause: error });
    }
    const headers = new Headers();
    for (const [name, value] of Object.entries(answer.headers)) {
      if (Array.isArray(value)) for (const item of value) headers.append(name, item);
      else if (value !== undefined) headers.set(name, value);
    }
    const status = answer.statusCode;
    return new Response(NULL_BODY_STATUSES.has(status) ? null : bytes, { status, headers });
  };
}
