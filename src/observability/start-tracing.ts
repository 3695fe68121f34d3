// Tracing for one gateway, or undefined when off: then neither the SDK nor the exporter is
// loaded (tracing-sdk.ts is imported only here, and only when on), and no plugin, hook or poller
// does any tracing work.
import type { Logger } from 'pino';
import type { GatewayTracing } from './tracing.js';

export async function startTracing(on: boolean, logger: Logger): Promise<GatewayTracing | undefined> {
  if (!on) return undefined;
  const { createTracing } = await import('./tracing-sdk.js');
  return createTracing(logger);
}
