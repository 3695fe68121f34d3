// OpenTelemetry traces, configured only through the standard OTEL_* variables, which the SDK
// reads itself: off unless an OTLP endpoint is set (src/config.ts decides). This module is all
// the gateway loads when tracing is off: the interface the plugin, the upstream layer and the
// pollers call. The SDK and the exporter are in tracing-sdk.ts, imported only once tracing is
// on; here `@opentelemetry/api` is imported for its types only, which compile away.
import type { Attributes, Context, Span } from '@opentelemetry/api';

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

/**
 * What the gateway calls to trace; one per gateway, built by `startTracing`
 * (src/observability/start-tracing.ts) when tracing is on.
 */
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
