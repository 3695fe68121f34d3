// Trusted documents (security.trustedDocuments.manifest): the operations the gateway's own clients were built
// with, read from the manifest Apollo's `generate-persisted-query-manifest` writes or from the
// `persisted-documents.json` of graphql-codegen's client preset. The list is read at start, and
// again on SIGHUP (main.ts) or when its file changes; a new list replaces the old one in one
// assignment, so a request sees one list or the other, never a mix, and none is dropped. A list
// that does not read, parse or validate is refused whole: the last good one stays, and one warn
// line says why. The Apollo plugin that uses it is plugins/trusted-documents.ts.
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { Kind, parse } from 'graphql';
import type { Logger } from 'pino';
import { Counter, Gauge } from 'prom-client';
import { z } from 'zod';
import { ConfigError, type TrustedDocumentsSource } from '../config.js';
import type { GatewayMetrics } from '../observability/metrics.js';

/** A manifest at a URL must answer within this; a slow one fails the start or the reload. */
const FETCH_TIMEOUT_MS = 10_000;
/** Editors and deploy tools write a file in several steps: one reload after they are done. */
const WATCH_DEBOUNCE_MS = 100;

export interface TrustedDocument {
  /** The id clients send: the manifest's `id`, or the client preset's key (`sha256:…`). */
  id: string;
  /** SHA-256 of the body, hex: what an APQ client (Apollo Client's persisted-queries link) sends. */
  hash: string;
  body: string;
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** One version of the list, never changed once built. */
export class TrustedDocumentList {
  private readonly byId = new Map<string, TrustedDocument>();
  private readonly byHash = new Map<string, TrustedDocument>();

  constructor(
    documents: readonly TrustedDocument[],
    /** Which format it was read from, for the log. */
    readonly format: ManifestFormat,
  ) {
    for (const document of documents) {
      this.byId.set(document.id, document);
      this.byHash.set(document.hash, document);
    }
  }

  get size(): number {
    return this.byId.size;
  }

  /** Every listed document (mcp.trustedDocumentTools offers their operations as tools). */
  documents(): IterableIterator<TrustedDocument> {
    return this.byId.values();
  }

  /** The document a client names by id: the manifest's id, or the SHA-256 of its body. */
  byIdOrHash(id: string): TrustedDocument | undefined {
    return this.byId.get(id) ?? this.byHash.get(id);
  }

  /** The listed document whose text is exactly this one, byte for byte. */
  byText(text: string): TrustedDocument | undefined {
    return this.byHash.get(sha256Hex(text));
  }
}

export type ManifestFormat = 'apollo-persisted-query-manifest' | 'client-preset-persisted-documents';

/** What `generate-persisted-query-manifest` writes. */
const apolloManifest = z.object({
  format: z.literal('apollo-persisted-query-manifest'),
  version: z.literal(1),
  operations: z.array(
    z.object({
      id: z.string().min(1),
      name: z.string().optional(),
      type: z.enum(['query', 'mutation', 'subscription']).optional(),
      body: z.string().min(1),
    }),
  ),
});

/** The client preset's `persisted-documents.json`: `{ "<hash>": "<document>" }`. */
const clientPresetManifest = z.record(z.string().min(1), z.string().min(1));

/** Why a manifest is refused, in one line (the first problem found). */
class ManifestError extends Error {}

/** Reads a manifest's text into a list: either format, every body a GraphQL operation. */
export function parseManifest(text: string): TrustedDocumentList {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ManifestError(`not JSON (${(error as Error).message})`);
  }
  const isApollo = typeof json === 'object' && json !== null && !Array.isArray(json) && 'format' in json;
  const schema = isApollo ? apolloManifest : clientPresetManifest;
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.length ? issue.path.join('.') : 'the manifest';
    const expected = isApollo
      ? 'an Apollo persisted query manifest'
      : 'a { "<id>": "<document>" } map, or an Apollo manifest with "format"';
    throw new ManifestError(`${where}: ${issue.message}; expected ${expected}`);
  }
  const entries = isApollo
    ? (parsed.data as z.infer<typeof apolloManifest>).operations.map((o) => [o.id, o.body] as const)
    : Object.entries(parsed.data as z.infer<typeof clientPresetManifest>);

  const documents = new Map<string, TrustedDocument>();
  for (const [id, body] of entries) {
    const known = documents.get(id);
    if (known !== undefined && known.body !== body) {
      throw new ManifestError(`id ${JSON.stringify(id)} is listed twice, with different documents`);
    }
    // A body that is not an operation would fail every request that names it: the list is refused
    // now, with its id, rather than each of those requests later.
    let definitions;
    try {
      definitions = parse(body, { noLocation: true }).definitions;
    } catch (error) {
      throw new ManifestError(`the document of id ${JSON.stringify(id)}: ${(error as Error).message}`);
    }
    if (!definitions.some((d) => d.kind === Kind.OPERATION_DEFINITION)) {
      throw new ManifestError(`the document of id ${JSON.stringify(id)} has no operation`);
    }
    documents.set(id, { id, hash: sha256Hex(body), body });
  }
  return new TrustedDocumentList(
    [...documents.values()],
    isApollo ? 'apollo-persisted-query-manifest' : 'client-preset-persisted-documents',
  );
}

/**
 * Where the list comes from, as it may be shown in a log line: a URL without its credentials
 * or query string (either may carry a token).
 */
function shownSource(source: TrustedDocumentsSource): string {
  if (source.kind === 'file') return source.path;
  const url = new URL(source.url);
  return `${url.origin}${url.pathname}`;
}

/**
 * One GET with a timeout. Node's fetch, not ky: ky's instance (upstream/http.ts) is the
 * fine-tune API's, with its key, breaker, concurrency bound and metrics, none of which belongs
 * to a configuration file read at start and on SIGHUP; and no retry is wanted (SIGHUP again is
 * the retry, and a start fails fast).
 */
async function fetchManifest(url: string): Promise<string> {
  const response = await fetch(url, {
    headers: { accept: 'application/json' },
    signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
  });
  if (!response.ok) {
    await response.body?.cancel();
    throw new ManifestError(`HTTP ${response.status} from the manifest's URL`);
  }
  return response.text();
}

async function readSource(source: TrustedDocumentsSource): Promise<string> {
  try {
    return source.kind === 'file' ? await readFile(source.path, 'utf8') : await fetchManifest(source.url);
  } catch (error) {
    if (error instanceof ManifestError) throw error;
    // A file's errno code (ENOENT, EACCES); fetch's cause (ECONNREFUSED), or its timeout.
    const { code, message, cause } = error as {
      code?: string;
      message?: string;
      cause?: { code?: string; message?: string };
    };
    throw new ManifestError(
      `cannot be read (${code ?? cause?.code ?? cause?.message ?? message ?? String(error)})`,
    );
  }
}

export type ReloadTrigger = 'SIGHUP' | 'file change';

export interface TrustedDocumentsOptions {
  source: TrustedDocumentsSource;
  logger: Logger;
  metrics: GatewayMetrics;
}

/** How a request named or sent its document, for `gateway_trusted_documents_requests_total`. */
export type TrustedResolution = 'id' | 'text' | 'introspection' | 'refused';

/** The current list, how it is reloaded, and its metrics. */
export class TrustedDocuments {
  #current: TrustedDocumentList;
  /** The text last read, good or not: a change event for the same bytes is not a reload. */
  #lastText: string;
  #reloading: Promise<unknown> = Promise.resolve();
  #watcher: FSWatcher | undefined;
  #debounce: NodeJS.Timeout | undefined;
  readonly #options: TrustedDocumentsOptions;
  readonly #shown: string;
  readonly #size: Gauge;
  readonly #reloads: Counter<'outcome'>;
  readonly #requests: Counter<'resolution'>;

  private constructor(options: TrustedDocumentsOptions, list: TrustedDocumentList, text: string) {
    this.#options = options;
    this.#current = list;
    this.#lastText = text;
    this.#shown = shownSource(options.source);
    const registers = [options.metrics.registry];
    this.#size = new Gauge({
      name: 'gateway_trusted_documents',
      help: 'Operations in the trusted documents list now in use (security.trustedDocuments.manifest).',
      registers,
    });
    this.#size.set(list.size);
    this.#reloads = new Counter({
      name: 'gateway_trusted_documents_reloads_total',
      help: 'Reloads of the trusted documents list: loaded (swapped in) or kept (refused; the last good list stays).',
      labelNames: ['outcome'],
      registers,
    });
    this.#requests = new Counter({
      name: 'gateway_trusted_documents_requests_total',
      help: 'GraphQL requests checked against the trusted documents: by id, by listed text, introspection, or refused.',
      labelNames: ['resolution'],
      registers,
    });
  }

  /** Reads the list once; a list that cannot be used stops the start (ConfigError, one line). */
  static async load(options: TrustedDocumentsOptions): Promise<TrustedDocuments> {
    let text: string;
    let list: TrustedDocumentList;
    try {
      text = await readSource(options.source);
      list = parseManifest(text);
    } catch (error) {
      if (!(error instanceof ManifestError)) throw error;
      throw new ConfigError(
        `Invalid security.trustedDocuments.manifest (${shownSource(options.source)}): ${error.message}`,
      );
    }
    const documents = new TrustedDocuments(options, list, text);
    options.logger.info(
      { source: documents.#shown, format: list.format, documents: list.size },
      'trusted documents loaded',
    );
    return documents;
  }

  /** The list in use: a request reads it once and keeps that version to its end. */
  get current(): TrustedDocumentList {
    return this.#current;
  }

  counted(resolution: TrustedResolution): void {
    this.#requests.inc({ resolution });
  }

  /**
   * Reads the list again and swaps it in if it is good; otherwise keeps the last good one and
   * logs one warn line. Reloads run one after another, never two at once.
   */
  reload(trigger: ReloadTrigger): Promise<void> {
    const next = this.#reloading.then(() => this.#reloadNow(trigger));
    this.#reloading = next.catch(() => undefined);
    return next;
  }

  async #reloadNow(trigger: ReloadTrigger): Promise<void> {
    const { logger } = this.#options;
    let text: string;
    try {
      text = await readSource(this.#options.source);
      // A change event for bytes already read (a touch, a second event of one write) changes nothing.
      if (trigger === 'file change' && text === this.#lastText) return;
      this.#lastText = text;
      const list = parseManifest(text);
      this.#current = list;
      this.#size.set(list.size);
      this.#reloads.inc({ outcome: 'loaded' });
      logger.info(
        { source: this.#shown, format: list.format, documents: list.size, trigger },
        'trusted documents loaded',
      );
    } catch (error) {
      if (!(error instanceof ManifestError)) throw error;
      this.#reloads.inc({ outcome: 'kept' });
      logger.warn(
        { source: this.#shown, trigger, reason: error.message, documents: this.#current.size },
        'trusted documents not reloaded; the last good list stays in use',
      );
    }
  }

  /**
   * Reloads when the file changes. The directory is watched, not the file: an editor or a deploy
   * that writes a new file and renames it over the old one (and Kubernetes' ConfigMap volumes,
   * which swap a `..data` link) would leave a watch on the old file seeing nothing.
   */
  watch(): void {
    if (this.#options.source.kind !== 'file' || this.#watcher !== undefined) return;
    const path = resolve(this.#options.source.path);
    const name = basename(path);
    const { logger } = this.#options;
    try {
      this.#watcher = watch(dirname(path), { persistent: false }, (_event, filename) => {
        if (filename !== null && filename !== name && !filename.startsWith('..')) return;
        clearTimeout(this.#debounce);
        this.#debounce = setTimeout(() => {
          this.reload('file change').catch((error: unknown) =>
            logger.error({ err: error }, 'trusted documents reload failed'),
          );
        }, WATCH_DEBOUNCE_MS);
        this.#debounce.unref();
      });
    } catch (error) {
      // The list in use stays; SIGHUP still reloads it.
      logger.warn(
        { source: this.#shown, reason: (error as Error).message },
        'cannot watch trusted documents',
      );
      return;
    }
    this.#watcher.on('error', (error) => {
      logger.warn({ source: this.#shown, reason: error.message }, 'stopped watching trusted documents');
      this.#watcher?.close();
    });
  }

  /** Stops watching; a reload under way finishes. */
  async close(): Promise<void> {
    clearTimeout(this.#debounce);
    this.#watcher?.close();
    this.#watcher = undefined;
    await this.#reloading;
  }
}
