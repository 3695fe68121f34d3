// The least any GraphQL layer in front of the REST call does for the bench's one query shape,
// with the same sharing as the gateway: read the body; join an identical request (same
// credential, same body) in flight; otherwise one `undici.request` upstream, `JSON.parse`, the
// fields mapped by hand, `JSON.stringify`; write. No GraphQL parsing, validation, limits, error
// handling, logs or metrics, so not a gateway: the ceiling a real one is measured against in the
// same run.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { expectedGraphQLJobs, restPath, type Page } from './scenarios.js';

const upstream = new URL(process.env.MINIMAL_LAYER_UPSTREAM ?? 'http://127.0.0.1:4010/v0.5');
const agent = new Agent({ keepAliveTimeout: 30_000, connections: 256 });
const flights = new Map<string, Promise<Buffer>>();

async function answer(page: Page, authorization: string): Promise<Buffer> {
  const { statusCode, body } = await agent.request({
    origin: upstream.origin,
    path: `${upstream.pathname}${restPath(page)}`,
    method: 'GET',
    headers: { authorization, accept: 'application/json' },
  });
  const text = await body.text();
  if (statusCode !== 200) throw new Error(`upstream answered ${statusCode}`);
  const jobs = expectedGraphQLJobs(JSON.parse(text) as Parameters<typeof expectedGraphQLJobs>[0]);
  return Buffer.from(`${JSON.stringify({ data: { fineTuneJobs: jobs } })}\n`);
}

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    const text = Buffer.concat(chunks).toString('utf8');
    const authorization = req.headers.authorization ?? '';
    const key = `${authorization}\n${text}`;
    let flight = flights.get(key);
    if (flight === undefined) {
      const { variables } = JSON.parse(text) as { variables: Page };
      flight = answer(variables, authorization).finally(() => flights.delete(key));
      flights.set(key, flight);
    }
    flight.then(
      (bytes) => res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end(bytes),
      () => res.writeHead(502).end(),
    );
  });
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  console.log(`Minimal layer at http://127.0.0.1:${port}/graphql -> ${upstream.href}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
