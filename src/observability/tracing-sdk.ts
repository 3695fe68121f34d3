// The OpenTelemetry SDK half of tracing, imported by tracing.ts only when an OTLP endpoint is
// set: a tracer provider of the gateway's own (not registered globally, so that an operator's
// SDK, or a second gateway in the same process, is left alone), a batch span processor, the
// OTLP/HTTP JSON exporter, and the W3C trace-context propagator. The SDK reads its standard
// OTEL_* variables itself (endpoint, headers, timeout, sampler, batching, resource); the gateway
// adds its service name, unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES names one. Parents
// are passed explicitly (the operation's context rides on the GraphQL context); only the
// pollers, whose calls belong to no operation, use an AsyncLocalStorage of this module's.
import { AsyncLocalStorage } from 'node:async_hooks';
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Link,
  type Span,
} from '@opentelemetry/api';
import { ExportResultCode, parseKeyPairsIntoRecord, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import {
  defaultResource,
  detectResources,
  envDetector,
  resourceFromAttributes,
} from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { Logger } from 'pino';
import { redactSecrets } from './secrets.js';
import type { GatewayTracing, TraceSpanOptions } from './tracing.js';

const DEFAULT_SERVICE_NAME = 'fine-tune-gateway';

const KINDS = { server: SpanKind.SERVER, client: SpanKind.CLIENT, internal: SpanKind.INTERNAL };

/**
 * The OTLP exporter, saying in one warn line when exports start failing (the spans of that
 * batch are dropped) and in one info line when they work again; the SDK itself says nothing.
 */
function reportingExporter(logger: Logger): SpanExporter {
  const exporter = new OTLPTraceExporter();
  // The export headers' values (a collector's or vendor's key) never reach the log.
  const secrets = ['OTEL_EXPORTER_OTLP_HEADERS', 'OTEL_EXPORTER_OTLP_TRACES_HEADERS'].flatMap((name) =>
    Object.values(parseKeyPairsIntoRecord(process.env[name])).filter((value) => value !== ''),
  );
  let failing = false;
  return {
    export(spans, done) {
      exporter.export(spans, (result) => {
        if (result.code !== ExportResultCode.SUCCESS && !failing) {
          failing = true;
          logger.warn(
            { reason: redactSecrets(result.error?.message ?? 'unknown', secrets), spans: spans.length },
            'trace export failed; spans are dropped until the collector takes them again',
          );
        } else if (result.code === ExportResultCode.SUCCESS && failing) {
          failing = false;
          logger.info('trace export works again');
        }
        done(result);
      });
    },
    shutdown: () => exporter.shutdown(),
    forceFlush: () => exporter.forceFlush(),
  };
}

export function createTracing(logger: Logger): GatewayTracing {
  const provider = new BasicTracerProvider({
    // Later wins: the gateway's name over the SDK's `unknown_service`, the operator's over both.
    resource: defaultResource()
      .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: DEFAULT_SERVICE_NAME }))
      .merge(detectResources({ detectors: [envDetector] })),
    spanProcessors: [new BatchSpanProcessor(reportingExporter(logger))],
  });
  const tracer = provider.getTracer('fine-tune-gateway');
  const propagator = new W3CTraceContextPropagator();
  const ambient = new AsyncLocalStorage<Context>();

  return {
    startSpan(name: string, options: TraceSpanOptions = {}): Span {
      const links: Link[] = [];
      for (const linked of options.links ?? []) {
        const context = trace.getSpanContext(linked);
        if (context !== undefined) links.push({ context });
      }
      return tracer.startSpan(
        name,
        {
          kind: KINDS[options.kind ?? 'internal'],
          attributes: options.attributes,
          links,
          startTime: options.startTime,
        },
        options.parent ?? ROOT_CONTEXT,
      );
    },
    contextOf: (span, parent) => trace.setSpan(parent ?? ROOT_CONTEXT, span),
    fail(span, errorType) {
      span.setAttribute('error.type', errorType);
      span.setStatus({ code: SpanStatusCode.ERROR });
    },
    extract(header) {
      const context = propagator.extract(ROOT_CONTEXT, header, {
        get: (carrier, key) => (carrier as typeof header)(key),
        keys: () => [],
      });
      return trace.getSpanContext(context) === undefined ? undefined : context;
    },
    inject(context, set) {
      propagator.inject(context, set, {
        set: (carrier, key, value) => (carrier as typeof set)(key, value),
      });
    },
    within: (context, run) => ambient.run(context, run),
    ambient: () => ambient.getStore(),
    shutdown: () => provider.shutdown(),
  };
}
