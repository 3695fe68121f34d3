// A real graphql-ws client for the tests: one WebSocket per key to the gateway's /graphql, and
// subscriptions whose every event, error and completion is recorded for assertions.
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { expect } from 'vitest';

export interface EventResult {
  data?: Record<string, unknown> | null;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}

export interface LiveSubscription {
  events: EventResult[];
  /** Set when the server sent an `error` message (the operation failed before streaming). */
  failure: unknown;
  completed: boolean;
  /** Resolves once `count` events arrived, or the stream ended (then fails if they did not). */
  waitForEvents(count: number): Promise<EventResult[]>;
  /** Resolves when the stream completes or fails. */
  finished: Promise<void>;
  unsubscribe(): void;
}

export function connect(
  httpUrl: string,
  apiKey: string | null,
  extraParams: Record<string, unknown> = {},
  /** The Origin header a browser would send; none by default, as from a server. */
  origin?: string,
) {
  const url = httpUrl.replace(/^http/, 'ws');
  class BrowserLikeWebSocket extends WebSocket {
    constructor(address: string, protocols?: string | string[]) {
      super(address, protocols, origin === undefined ? {} : { origin });
    }
  }
  const client: Client = createClient({
    url,
    webSocketImpl: BrowserLikeWebSocket,
    retryAttempts: 0,
    lazy: true,
    connectionParams: { ...(apiKey !== null && { Authorization: `Bearer ${apiKey}` }), ...extraParams },
  });
  return {
    client,
    subscribe(query: string, variables: Record<string, unknown> = {}): LiveSubscription {
      const events: EventResult[] = [];
      let settle!: () => void;
      const finished = new Promise<void>((resolve) => (settle = resolve));
      const subscription: LiveSubscription = {
        events,
        failure: undefined,
        completed: false,
        finished,
        unsubscribe: () => undefined,
        waitForEvents: (count) =>
          waitUntil(
            () => events.length >= count || subscription.completed || subscription.failure !== undefined,
          ).then(() => {
            expect(
              events.length,
              JSON.stringify({ events, failure: subscription.failure }),
            ).toBeGreaterThanOrEqual(count);
            return events;
          }),
      };
      subscription.unsubscribe = client.subscribe(
        { query, variables },
        {
          next: (value) => void events.push(value as EventResult),
          error: (error) => {
            subscription.failure = error;
            settle();
          },
          complete: () => {
            subscription.completed = true;
            settle();
          },
        },
      );
      return subscription;
    },
    dispose: () => client.dispose(),
  };
}

/**
 * Waits until `condition` holds, checking every few milliseconds: it waits on what the gateway
 * did, never against the clock (the test's own timeout is the only bound).
 */
export async function waitUntil(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5));
}
