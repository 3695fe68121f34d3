// Entry point: read the configuration, start the upstream (the built-in simulator when no real
// API is configured) and the gateway, and stop both cleanly on SIGTERM or SIGINT.
import { ConfigError, loadConfig } from './config.js';
import { EXPLORER_PATH } from './http/explorer.js';
import { createLogger } from './observability/logging.js';
import { startGateway } from './server.js';
import { DEMO_API_KEY } from './simulator/seed.js';
import { startSimulator, type RunningSimulator } from './simulator/server.js';

const LISTEN_ERRORS = new Set(['EADDRINUSE', 'EACCES', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN']);

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`fine-tune-gateway: ${error.message}`);
      process.exit(1);
    }
    throw error;
  }
  const logger = createLogger(config.logLevel, { pretty: config.logPretty });

  let simulator: RunningSimulator | undefined;
  let upstreamBaseUrl: string;
  let serverApiKey: string | undefined;
  let upstreamDescription: string;
  if (config.upstreamTarget.kind === 'simulator') {
    // The demo keeps a living population, so there is always something running to look at.
    simulator = await startSimulator(config.simulator);
    upstreamBaseUrl = simulator.url;
    serverApiKey = DEMO_API_KEY;
    upstreamDescription = `built-in simulator: demo data (${simulator.url}); clients without a key use the demo key`;
  } else {
    upstreamBaseUrl = config.upstreamTarget.baseUrl;
    serverApiKey = config.upstreamTarget.serverApiKey;
    upstreamDescription = `${upstreamBaseUrl}; clients without a key ${serverApiKey && !config.auth.identityProvider ? "use the gateway's ATAI_API_KEY" : 'are refused'}`;
  }

  let gateway;
  try {
    gateway = await startGateway({ config, upstreamBaseUrl, serverApiKey, logger });
  } catch (error) {
    // A manifest that cannot be used (security.trustedDocuments) is a bad setting: one line, as above.
    if (error instanceof ConfigError) {
      console.error(`fine-tune-gateway: ${error.message}`);
      process.exit(1);
    }
    // A port in use or a HOST that does not resolve is the operator's to fix: one line, no stack.
    const code = (error as { code?: unknown } | null)?.code;
    if (typeof code !== 'string' || !LISTEN_ERRORS.has(code)) throw error;
    const port = (error as { port?: unknown }).port ?? config.port;
    console.error(`fine-tune-gateway: cannot listen on ${config.host}:${String(port)} (${code})`);
    process.exit(1);
  }
  console.log(`Fine-tune jobs GraphQL gateway ready at ${gateway.url}`);
  console.log(`Upstream: ${upstreamDescription}`);
  console.log(`Prometheus metrics at ${gateway.metricsUrl}`);
  if (config.explorer.enabled) {
    const graphiql = new URL(EXPLORER_PATH, gateway.url).href;
    console.log(
      config.explorer.page === 'graphiql'
        ? `Open ${gateway.url} in a browser to explore it in GraphiQL.`
        : `Open ${gateway.url} in a browser to explore it in Apollo Sandbox (needs the internet), or ${graphiql} for GraphiQL (works offline).`,
    );
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      // A second signal (Ctrl-C again): whoever sent it will not wait for the grace period.
      console.error(`fine-tune-gateway: ${signal} again, exiting without waiting`);
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'stopping');
    await gateway.stop();
    await simulator?.stop();
    await new Promise<void>((resolve) => logger.flush(() => resolve()));
    process.exit(0);
  };
  // SIGHUP reloads the trusted documents; without them it keeps Node's default (exit).
  if (config.security.trustedDocuments) {
    process.on('SIGHUP', () => {
      gateway.reloadTrustedDocuments('SIGHUP').catch((error: unknown) => {
        logger.error({ err: error }, 'trusted documents reload failed');
      });
    });
  }
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

await main();
