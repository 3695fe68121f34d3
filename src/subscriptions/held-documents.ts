// The documents running subscriptions hold, all keys together (subscriptions.documentBytes): a
// subscription's parsed document keeps its whole text, padding included, for as long as it runs.
import type { GraphQLError } from 'graphql';
import { ErrorCode, gatewayError } from '../errors.js';

export class HeldDocuments {
  private held = 0;

  constructor(private readonly maxBytes: number) {}

  get bytes(): number {
    return this.held;
  }

  /**
   * `events`, counted against the bound until it ends; the error to answer instead when the
   * bound is reached (the stream is then closed).
   */
  hold<T>(events: AsyncGenerator<T>, bytes: number): AsyncGenerator<T> | GraphQLError {
    if (this.held + bytes > this.maxBytes) {
      void events.return(undefined);
      return gatewayError(
        ErrorCode.SUBSCRIPTION_LIMIT_EXCEEDED,
        `The gateway holds as many subscription documents as it may (${this.maxBytes} bytes); try again later, or with a shorter document.`,
        { limit: 'documentBytes', max: this.maxBytes },
      );
    }
    this.held += bytes;
    return releasingOnEnd(events, () => (this.held -= bytes));
  }
}

/**
 * The same stream, calling `release` once when it ends, however it ends (done, an error, or the
 * client's `return`); `return` reaches the stream at once, as EventChannel's does.
 */
function releasingOnEnd<T>(events: AsyncGenerator<T>, release: () => void): AsyncGenerator<T> {
  let released = false;
  const once = () => {
    if (!released) {
      released = true;
      release();
    }
  };
  const settle = (result: IteratorResult<T>) => {
    if (result.done) once();
    return result;
  };
  const wrapped: AsyncGenerator<T> = {
    next: (...args) =>
      events.next(...args).then(settle, (error: unknown) => {
        once();
        throw error;
      }),
    return: (value) => {
      once();
      return events.return(value);
    },
    throw: (error) => {
      once();
      return events.throw(error);
    },
    [Symbol.asyncIterator]: () => wrapped,
  };
  return wrapped;
}
