// The answers cache and Apollo's APQ cache in Redis, through Apollo's own KeyvAdapter (keyv with
// @keyv/redis, on the fleet's connection): an answer cached by one instance serves the others,
// and a document registered by hash on one is found on all.
//
// A write empties the answers on every instance at once without finding them, as a write empties
// one instance's own cache: every answer's key holds the fleet's epoch (INCR on each write), so
// the answers kept before a write are never read again and leave with their TTL. Every answer,
// not only the writer's key's: an organization may read with several keys. An answer whose
// flight began before a write is stored under the old epoch: it is never served either.
import { createHash } from 'node:crypto';
import { KeyvAdapter } from '@apollo/utils.keyvadapter';
import KeyvRedis from '@keyv/redis';
import { Keyv } from 'keyv';
import type { Logger } from 'pino';
import type { FleetRedis } from './redis.js';

/** The largest answer kept in Redis, in characters: a page of every job is about 1 MB. */
export const MAX_SHARED_ANSWER_CHARS = 4 * 1024 * 1024;
/** How long a persisted query (APQ) stays registered in Redis, in seconds: clients register again after. */
export const APQ_TTL_SECONDS = 24 * 60 * 60;

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Keyv whose TTLs are whole milliseconds: KeyvAdapter's seconds × 1000 may not be, and Redis's PX refuses those. */
class WholeMillisecondsKeyv<V> extends Keyv<V> {
  override set<Value = V>(key: string, value: Value, ttl?: number): Promise<boolean> {
    return super.set(key, value, ttl === undefined ? undefined : Math.max(1, Math.round(ttl)));
  }
}

/** A KeyvAdapter on the fleet's Redis connection, its keys under `prefix`. */
function keyvAdapter(redis: FleetRedis, prefix: string, logger: Logger): KeyvAdapter<string> {
  const store = new KeyvRedis<string>(redis.client, {
    throwOnConnectError: false,
    throwOnErrors: false,
    keyPrefixSeparator: '',
  });
  const keyv = new WholeMillisecondsKeyv<string>({ store, namespace: prefix, useKeyPrefix: false });
  // Failures read as misses; the connection logs the transition (down, back) once.
  const quiet = (error: unknown) => logger.debug({ err: error }, 'a Redis cache command failed');
  store.on('error', quiet);
  keyv.on('error', quiet);
  // The same keyv: KeyvAdapter, a CommonJS module, sees its CommonJS declarations.
  return new KeyvAdapter<string>(keyv as unknown as ConstructorParameters<typeof KeyvAdapter<string>>[0], {
    disableBatchReads: true,
  });
}

/** The APQ cache Apollo Server reads (`persistedQueries.cache`); Apollo adds `apq:` to each hash. */
export class FleetPersistedQueries {
  private readonly adapter: KeyvAdapter<string>;

  constructor(
    private readonly redis: FleetRedis,
    logger: Logger,
  ) {
    this.adapter = keyvAdapter(redis, redis.prefix, logger);
  }

  // Redis down or not answering: a miss, as Apollo Server expects of a cache.
  async get(key: string): Promise<string | undefined> {
    return this.redis.command(() => this.adapter.get(key)).catch(() => undefined);
  }

  async set(key: string, value: string, options?: { ttl?: number | null }): Promise<void> {
    const ttl = options?.ttl ?? APQ_TTL_SECONDS;
    await this.redis.command(() => this.adapter.set(key, value, { ttl })).catch(() => undefined);
  }

  async delete(key: string): Promise<boolean | void> {
    return this.redis.command(() => this.adapter.delete(key)).catch(() => false);
  }
}

/** Where one answer is kept in Redis: its key for the fleet's epoch of the moment. */
export type AnswerSlot = string & { readonly slot: unique symbol };

export class FleetAnswers {
  private readonly adapter: KeyvAdapter<string>;
  /** A write's invalidation failed (Redis down): once it is back, every answer goes. */
  private invalidationLost = false;

  constructor(
    private readonly redis: FleetRedis,
    private readonly ttlMs: number,
    private readonly logger: Logger,
  ) {
    this.adapter = keyvAdapter(redis, `${redis.prefix}answer:`, logger);
    redis.onChange((up) => {
      if (up && this.invalidationLost) void this.forgetEverything();
    });
  }

  /** The slot of an answer's key now; undefined while Redis is down (nothing is shared then). */
  async slot(_identity: string, key: string): Promise<AnswerSlot | undefined> {
    if (!this.redis.up) return undefined;
    try {
      const epoch = await this.redis.command((client) => client.get(this.redis.key('epoch')));
      return `${sha256(key)}:${epoch ?? 0}` as AnswerSlot;
    } catch {
      return undefined;
    }
  }

  async get(slot: AnswerSlot): Promise<string | undefined> {
    try {
      return await this.redis.command(() => this.adapter.get(slot));
    } catch {
      return undefined;
    }
  }

  /** Keeps an answer (its JSON) for the TTL; one too large is not kept. Never fails. */
  async set(slot: AnswerSlot, text: string): Promise<void> {
    if (text.length > MAX_SHARED_ANSWER_CHARS) return;
    const ttl = this.ttlMs / 1000;
    await this.redis.command(() => this.adapter.set(slot, text, { ttl })).catch(() => undefined);
  }

  /**
   * Empties the answers on every instance (the epoch moves on); resolves once Redis has it, or at
   * once when Redis is down (then the epoch moves on when it is back).
   */
  async forget(_identity: string): Promise<void> {
    try {
      // No TTL: with Redis's volatile-lru eviction (docs/fleet.md) the epoch is never evicted,
      // which would serve the answers kept before it again.
      await this.redis.command((client) => client.incr(this.redis.key('epoch')));
    } catch {
      this.invalidationLost = true;
    }
  }

  private async forgetEverything(): Promise<void> {
    try {
      await this.redis.command((client) => client.incr(this.redis.key('epoch')));
      this.invalidationLost = false;
      this.logger.info('answers cached in Redis before the outage are no longer served');
    } catch {
      // Still down: tried again at the next reconnection.
    }
  }
}
