// One server of `npm run bench:http-servers`, in a process of its own: the same Apollo Server
// (the gateway's schema, resolvers and per-request context) behind the HTTP layer named by
// BENCH_SERVER: `standalone`, `express` or `node`. UPSTREAM_URL is the simulator's API.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloServer, HeaderMap } from '@apollo/server';
import { ApolloServerPluginCacheControlDisabled } from '@apollo/server/plugin/disabled';
import type { ContextDependencies, GatewayContext } from '../src/context.js';

// The gateway's modules as `npm run build` left them in dist/ (what `npm run bench` measures too);
// tsc's copies in dist-bench/src would look for schema/*.graphql in dist-bench/.
const dist = (path: string) => import(new URL(`../../dist/${path}`, import.meta.url).href);
const { buildGatewaySchema } = (await dist('schema.js')) as typeof import('../src/schema.js');
const { createContext } = (await dist('context.js')) as typeof import('../src/context.js');
const { loadConfig } = (await dist('config.js')) as typeof import('../src/config.js');
const { createLogger } = (await dist('logging.js')) as typeof import('../src/logging.js');
const { GatewayMetrics } = (await dist('metrics.js')) as typeof import('../src/metrics.js');
const { UpstreamHttp } = (await dist('upstream/client.js')) as typeof import('../src/upstream/client.js');

const kind = process.env.BENCH_SERVER;
// The gateway's default settings (an empty environment), as src/server.ts wires them.
const config = loadConfig({});
const metrics = new GatewayMetrics();
const deps: ContextDependencies = {
  http: new UpstreamHttp({ baseUrl: process.env.UPSTREAM_URL!, ...config.upstreamSettings }, metrics),
  metrics,
  serverApiKey: undefined,
  logger: createLogger('warn'),
  traceUpstream: false,
  loaderSettings: { metricsConcurrency: config.metricsConcurrency },
  jobWriteSettings: {
    attempts: 1 + config.upstreamSettings.retryLimit,
    backoffLimitMs: config.upstreamSettings.backoffLimitMs,
  },
};
const context = async ({ req }: { req: IncomingMessage }) =>
  createContext(deps, { authorization: req.headers.authorization, requestId: randomUUID() });

const apollo = new ApolloServer<GatewayContext>({
  schema: await buildGatewaySchema({ federation: false }),
  // The parent stops this process with SIGTERM; Apollo's own signal handling would only delay it.
  stopOnTerminationSignals: false,
  // As in src/server.ts: no cache hints are used, and the plugin would wrap every field resolver.
  plugins: [ApolloServerPluginCacheControlDisabled()],
});

// Like src/server.ts (events rather than `for await`, which costs a promise per chunk).
function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
}

async function handleBare(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const text = await readBody(req);
  let body: unknown;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    res.writeHead(400).end('Request body is not valid JSON.');
    return;
  }
  const headers = new HeaderMap();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
  }
  const url = req.url ?? '/';
  const queryAt = url.indexOf('?');
  const response = await apollo.executeHTTPGraphQLRequest({
    httpGraphQLRequest: {
      method: req.method?.toUpperCase() ?? 'GET',
      headers,
      search: queryAt < 0 ? '' : url.slice(queryAt),
      body,
    },
    context: () => context({ req }),
  });
  res.statusCode = response.status ?? 200;
  for (const [name, value] of response.headers) res.setHeader(name, value);
  if (response.body.kind === 'complete') {
    res.end(response.body.string);
    return;
  }
  for await (const chunk of response.body.asyncIterator) res.write(chunk);
  res.end();
}

async function listen(handler: RequestListener): Promise<number> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

let port: number;
if (kind === 'standalone') {
  const { startStandaloneServer } = await import('@apollo/server/standalone');
  const { url } = await startStandaloneServer(apollo, { listen: { port: 0, host: '127.0.0.1' }, context });
  port = Number(new URL(url).port);
} else if (kind === 'express') {
  // Imported only here, so the other servers' processes do not load Express at all.
  const { default: express } = await import('express');
  const { expressMiddleware } = await import('@as-integrations/express5');
  await apollo.start();
  const app = express();
  app.use('/graphql', express.json(), expressMiddleware(apollo, { context }));
  port = await listen(app);
} else if (kind === 'node') {
  await apollo.start();
  port = await listen((req, res) => {
    handleBare(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  });
} else {
  throw new Error(`BENCH_SERVER must be standalone, express or node, not ${kind}`);
}
// startStandaloneServer answers on every path; the others on /graphql only.
console.log(`${kind} server at http://127.0.0.1:${port}/graphql`);
process.once('SIGTERM', () => process.exit(0));
