// OpenTelemetry traces, configured only through the standard OTEL_* variables: off unless an
// OTLP endpoint is set. This module is all the gateway loads when tracing is off: the settings
// (zod, read by src/config.ts) and the interface the plugin, the upstream layer and the pollers
// call. The SDK and the exporter are in tracing-sdk.ts, imported only once tracing is on; here
// `@opentelemetry/api` is imported for its types only, which compile away.
import type { Attributes, Context, Span } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { z } from 'zod';

/** A span's context, as the parent of the spans started in it (an OpenTelemetry `Context`). */
export type TraceContext = Context;
export type TraceSpan = Span;

export interface TraceSpanOptions {
  kind?: 'server' | 'client' | 'internal';
  /** The parent; none starts a new trace. */
  parent?: TraceContext;
  /** Spans this one is linked to (a poll to the operations that subscribed). */
  links?: readonly TraceContext[];
  attributes?: Attributes;
  /** Epoch milliseconds; now by default. */
  startTime?: number;
}

/** What the gateway calls to trace; one per gateway, built by `startTracing` when tracing is on. */
export interface GatewayTracing {
  startSpan(name: string, options?: TraceSpanOptions): TraceSpan;
  /** The context the children of `span` start in. */
  contextOf(span: TraceSpan, parent?: TraceContext): TraceContext;
  /** Marks a span failed: ERROR status and `error.type`, a code (never a message, which may quote input). */
  fail(span: TraceSpan, errorType: string): void;
  /** The client's W3C `traceparent` (and `tracestate`); undefined when absent or malformed. */
  extract(header: (name: string) => string | undefined): TraceContext | undefined;
  /** Writes the W3C `traceparent` (and `tracestate`) of a span's context into outgoing headers. */
  inject(context: TraceContext, set: (name: string, value: string) => void): void;
  /**
   * Runs `run` with `context` as the parent of the upstream calls it makes that carry none of
   * their own: the pollers' calls, which belong to no operation.
   */
  within<T>(context: TraceContext, run: () => T): T;
  /** The context `within` set, if any. */
  ambient(): TraceContext | undefined;
  /** Sends the spans not sent yet, then stops. */
  shutdown(): Promise<void>;
}

/** Everything the SDK is built from; undefined in the config when tracing is off. */
export interface TracingSettings {
  /** Where spans are sent, as OTLP/HTTP JSON: `http://collector:4318/v1/traces`. */
  tracesUrl: string;
  /** Headers of every export request (a collector's or vendor's key): never logged or shown. */
  headers: Record<string, string>;
  exportTimeoutMs: number;
  serviceName: string;
  resourceAttributes: Record<string, string>;
  sampler: TracesSampler;
  /** The ratio of the `traceidratio` samplers, 0 to 1. */
  samplerRatio: number;
  batch: {
    scheduledDelayMs: number;
    maxQueueSize: number;
    maxExportBatchSize: number;
    exportTimeoutMs: number;
  };
}

const SAMPLERS = [
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
  'always_on',
  'always_off',
  'traceidratio',
] as const;
export type TracesSampler = (typeof SAMPLERS)[number];

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const otlpUrl = z.url({ protocol: /^https?$/ });

/**
 * `key1=value1,key2=value2`, each part percent-decoded, as OTEL_RESOURCE_ATTRIBUTES and
 * OTEL_EXPORTER_OTLP_HEADERS are written; null when malformed.
 */
function keyValueList(text: string): Record<string, string> | null {
  const entries: Record<string, string> = {};
  for (const item of text.split(',')) {
    if (item.trim() === '') continue;
    const at = item.indexOf('=');
    if (at <= 0) return null;
    try {
      const key = decodeURIComponent(item.slice(0, at).trim());
      if (key === '') return null;
      entries[key] = decodeURIComponent(item.slice(at + 1).trim());
    } catch {
      return null;
    }
  }
  return entries;
}

const keyValues = (what: string) =>
  z.string().transform((text, ctx) => {
    const parsed = keyValueList(text);
    // The message never repeats the value: headers carry keys.
    if (parsed === null) {
      ctx.addIssue({ code: 'custom', message: `must be ${what} as key=value pairs separated by commas` });
      return z.NEVER;
    }
    return parsed;
  });

// "true" disables the SDK (the spec: case-insensitive); anything but true or false is a mistake.
const sdkDisabled = z
  .string()
  .transform((v) => v.toLowerCase())
  .pipe(z.enum(['true', 'false']));

/**
 * The standard variables the gateway reads (opentelemetry.io/docs/specs/otel/configuration/
 * sdk-environment-variables), merged into src/config.ts's schema. Only OTLP over HTTP with JSON
 * bodies is installed; a collector's port 4318 takes it.
 */
export const tracingEnvironment = {
  OTEL_SDK_DISABLED: sdkDisabled.optional(),
  OTEL_TRACES_EXPORTER: z.enum(['otlp', 'none']).optional(),
  OTEL_EXPORTER_OTLP_ENDPOINT: otlpUrl.optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: otlpUrl.optional(),
  OTEL_EXPORTER_OTLP_PROTOCOL: z
    .enum(['http/json'], { error: 'only http/json is supported (OTLP over HTTP, JSON bodies)' })
    .optional(),
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: z
    .enum(['http/json'], { error: 'only http/json is supported (OTLP over HTTP, JSON bodies)' })
    .optional(),
  OTEL_EXPORTER_OTLP_HEADERS: keyValues('headers').optional(),
  OTEL_EXPORTER_OTLP_TRACES_HEADERS: keyValues('headers').optional(),
  OTEL_EXPORTER_OTLP_TIMEOUT: int(1, 600_000).optional(),
  OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: int(1, 600_000).optional(),
  OTEL_SERVICE_NAME: z.string().trim().min(1).optional(),
  OTEL_RESOURCE_ATTRIBUTES: keyValues('attributes').optional(),
  OTEL_TRACES_SAMPLER: z.enum(SAMPLERS).default('parentbased_always_on'),
  OTEL_TRACES_SAMPLER_ARG: z.coerce.number().min(0).max(1).optional(),
  OTEL_BSP_SCHEDULE_DELAY: int(1, 600_000).default(5_000),
  OTEL_BSP_EXPORT_TIMEOUT: int(1, 600_000).default(30_000),
  OTEL_BSP_MAX_QUEUE_SIZE: int(1, 1_000_000).default(2_048),
  OTEL_BSP_MAX_EXPORT_BATCH_SIZE: int(1, 1_000_000).default(512),
};

/** Variables whose value is never repeated in a configuration error: they may hold keys. */
export const SECRET_TRACING_VARIABLES: ReadonlySet<string> = new Set([
  'OTEL_EXPORTER_OTLP_HEADERS',
  'OTEL_EXPORTER_OTLP_TRACES_HEADERS',
]);

type TracingEnvironment = z.output<z.ZodObject<typeof tracingEnvironment>>;

export const DEFAULT_SERVICE_NAME = 'fine-tune-gateway';

/** The settings, or undefined when tracing is off (no endpoint, the SDK disabled, exporter `none`). */
export function tracingSettings(e: TracingEnvironment): TracingSettings | undefined {
  if (e.OTEL_SDK_DISABLED === 'true' || e.OTEL_TRACES_EXPORTER === 'none') return undefined;
  const base = e.OTEL_EXPORTER_OTLP_ENDPOINT;
  // The signal's own endpoint is used as is; the general one is a base to which the path is added.
  const tracesUrl =
    e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ??
    (base === undefined ? undefined : `${base}${base.endsWith('/') ? '' : '/'}v1/traces`);
  if (tracesUrl === undefined) return undefined;
  const resourceAttributes = { ...e.OTEL_RESOURCE_ATTRIBUTES };
  return {
    tracesUrl,
    headers: { ...e.OTEL_EXPORTER_OTLP_HEADERS, ...e.OTEL_EXPORTER_OTLP_TRACES_HEADERS },
    exportTimeoutMs: e.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT ?? e.OTEL_EXPORTER_OTLP_TIMEOUT ?? 10_000,
    serviceName: e.OTEL_SERVICE_NAME ?? resourceAttributes['service.name'] ?? DEFAULT_SERVICE_NAME,
    resourceAttributes,
    sampler: e.OTEL_TRACES_SAMPLER,
    samplerRatio: e.OTEL_TRACES_SAMPLER_ARG ?? 1,
    batch: {
      scheduledDelayMs: e.OTEL_BSP_SCHEDULE_DELAY,
      maxQueueSize: e.OTEL_BSP_MAX_QUEUE_SIZE,
      maxExportBatchSize: Math.min(e.OTEL_BSP_MAX_EXPORT_BATCH_SIZE, e.OTEL_BSP_MAX_QUEUE_SIZE),
      exportTimeoutMs: e.OTEL_BSP_EXPORT_TIMEOUT,
    },
  };
}

/**
 * Tracing for one gateway, or undefined when off: then neither the SDK nor the exporter is
 * loaded, and no plugin, hook or poller does any tracing work.
 */
export async function startTracing(
  settings: TracingSettings | undefined,
  logger: Logger,
): Promise<GatewayTracing | undefined> {
  if (settings === undefined) return undefined;
  const { createTracing } = await import('./tracing-sdk.js');
  return createTracing(settings, logger);
}
