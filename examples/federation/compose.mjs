// Composes the supergraph with npm packages only (no `rover`): asks each running subgraph for its
// SDL (`{ _service { sdl } }` over HTTP, what `rover subgraph introspect` does) and composes them
// with The Guild's composer (@theguild/federation-composition), then writes the supergraph SDL
// that Hive Gateway (or Apollo Router) serves.
//
//   node compose.mjs [--subgraph name=url]... [--out supergraph.graphql]
//
// Defaults: fine-tune-jobs=http://127.0.0.1:4000/graphql (the gateway, federation.subgraph: true)
// and teams=http://127.0.0.1:4001/graphql (teams-subgraph.mjs). Each url is also where the router
// sends that subgraph's operations. Composition errors are printed and the exit code is 1.
/* global fetch -- Node 20 and later have it */
import { writeFileSync } from 'node:fs';
import process from 'node:process';
import { parseArgs } from 'node:util';
import { composeServices } from '@theguild/federation-composition';
import { parse } from 'graphql';

const { values } = parseArgs({
  options: {
    subgraph: { type: 'string', multiple: true },
    out: { type: 'string', default: 'supergraph.graphql' },
  },
});
const subgraphs = (
  values.subgraph ?? ['fine-tune-jobs=http://127.0.0.1:4000/graphql', 'teams=http://127.0.0.1:4001/graphql']
).map((entry) => {
  const at = entry.indexOf('=');
  if (at < 1) throw new Error(`--subgraph takes name=url, got "${entry}"`);
  return { name: entry.slice(0, at), url: entry.slice(at + 1) };
});

async function sdlOf({ name, url }) {
  // `_service` reads no data: no key is needed.
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ query: '{ _service { sdl } }' }),
  });
  const body = await response.json().catch(() => ({}));
  const sdl = body?.data?._service?.sdl;
  if (typeof sdl !== 'string') {
    throw new Error(
      `${name} (${url}) gave no SDL: HTTP ${response.status} ${JSON.stringify(body.errors ?? body)}`,
    );
  }
  return sdl;
}

const services = await Promise.all(
  subgraphs.map(async (subgraph) => ({ ...subgraph, typeDefs: parse(await sdlOf(subgraph)) })),
);
const result = composeServices(services);
if (result.errors?.length) {
  for (const error of result.errors) process.stderr.write(`composition: ${error.message}\n`);
  process.exit(1);
}
writeFileSync(values.out, result.supergraphSdl);
process.stdout.write(`supergraph of ${subgraphs.map((s) => s.name).join(', ')} written to ${values.out}\n`);
