// The documents running subscriptions hold: a subscription's parsed document keeps its whole
// text, padding included, for as long as it runs. Each key has its share
// (subscriptions.documentBytesPerKey; the callers without a key of their own share the
// gateway's), well below the bound of all keys together (subscriptions.documentBytes): one
// caller filling its share leaves room for the others.
import type { GraphQLError } from 'graphql';
import { ErrorCode, limitError } from '../errors.js';

export class HeldDocuments {
  private held = 0;
  /** Bytes held by credential identity (a hash of the key, never the key). */
  private readonly heldByIdentity = new Map<string, number>();

  constructor(
    private readonly maxBytes: number,
    private readonly maxBytesPerKey: number,
  ) {}

  get bytes(): number {
    return this.held;
  }

  /**
   * `events`, counted against the key's share and the bound until it ends; the error to answer
   * instead when either is reached (the stream is then closed).
   */
  hold<T>(events: AsyncGenerator<T>, bytes: number, identity: string): AsyncGenerator<T> | GraphQLError {
    const ofKey = this.heldByIdentity.get(identity) ?? 0;
    const refusal = this.refusal(ofKey + bytes, this.held + bytes);
    if (refusal !== undefined) {
      void events.return(undefined);
      return refusal;
    }
    this.held += bytes;
    this.heldByIdentity.set(identity, ofKey + bytes);
    return releasingOnEnd(events, () => {
      this.held -= bytes;
      const left = (this.heldByIdentity.get(identity) ?? bytes) - bytes;
      if (left === 0) this.heldByIdentity.delete(identity);
      else this.heldByIdentity.set(identity, left);
    });
  }

  /** Why a stream that would bring the key to `ofKey` and all to `all` bytes is refused, if it is. */
  private refusal(ofKey: number, all: number): GraphQLError | undefined {
    if (ofKey > this.maxBytesPerKey) {
      return limitError(
        ErrorCode.SUBSCRIPTION_LIMIT_EXCEEDED,
        'documentBytesPerKey',
        `This key's subscriptions hold as many document bytes as one key may (${this.maxBytesPerKey}, subscriptions.documentBytesPerKey): end some first, or send shorter documents.`,
        { max: this.maxBytesPerKey },
      );
    }
    if (all > this.maxBytes) {
      return limitError(
        ErrorCode.SUBSCRIPTION_LIMIT_EXCEEDED,
        'documentBytes',
        `The gateway holds as many subscription documents as it may (${this.maxBytes} bytes); try again later, or with a shorter document.`,
        { max: this.maxBytes },
      );
    }
    return undefined;
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
