// A second subgraph beside the gateway: teams, and which team owns each fine-tune job. It knows
// jobs by their @key only (the id), so `owner` on a job is an entity join across the two
// subgraphs, resolved by the router. graphql-yoga on a plain node:http server.
//
//   node teams-subgraph.mjs [--port 4001] [--host 127.0.0.1]
//
// Prints one line, `teams subgraph at <url>`, once it listens (the tests wait for it).
import { createServer } from 'node:http';
import process from 'node:process';
import { parseArgs } from 'node:util';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse } from 'graphql';
import { createYoga } from 'graphql-yoga';

const typeDefs = parse(/* GraphQL */ `
  extend schema @link(url: "https://specs.apollo.dev/federation/v2.9", import: ["@key"])

  "A team of the organization, responsible for some fine-tune jobs."
  type Team {
    "The team's id."
    id: ID!
    "The team's name."
    name: String!
  }

  "A fine-tune job, as the teams service knows it: by its id only."
  type FineTuneJob @key(fields: "id") {
    "The job's id."
    id: ID!
    "The team responsible for the job."
    owner: Team!
  }

  type Query {
    "Every team."
    teams: [Team!]!
  }
`);

const TEAMS = [
  { id: 'team-vision', name: 'Vision' },
  { id: 'team-motion', name: 'Motion' },
  { id: 'team-audio', name: 'Audio' },
];

/** The team that owns a job: fixed per id, the same on every run. */
function ownerOf(jobId) {
  let hash = 0;
  for (const char of jobId) hash = (hash * 31 + char.codePointAt(0)) >>> 0;
  return TEAMS[hash % TEAMS.length];
}

const resolvers = {
  Query: { teams: () => TEAMS },
  FineTuneJob: {
    __resolveReference: (reference) => ({ id: reference.id }),
    owner: (job) => ownerOf(job.id),
  },
};

const { values } = parseArgs({
  options: { port: { type: 'string', default: '4001' }, host: { type: 'string', default: '127.0.0.1' } },
});
const yoga = createYoga({
  schema: buildSubgraphSchema([{ typeDefs, resolvers }]),
  // A subgraph behind a router: no GraphiQL page, and no logging of every request.
  graphiql: false,
  logging: 'warn',
  plugins: [
    {
      // Callers' fine-tune keys are for the fine-tune gateway only: a router that sends one here
      // leaks it, and the request is refused.
      onRequest({ request, fetchAPI, endResponse }) {
        if (!request.headers.has('authorization')) return;
        const body = { errors: [{ message: 'The teams subgraph takes no Authorization header.' }] };
        const headers = { 'content-type': 'application/json' };
        endResponse(new fetchAPI.Response(JSON.stringify(body), { status: 400, headers }));
      },
    },
  ],
});
const server = createServer(yoga);
server.listen(Number(values.port), values.host, () => {
  const { address, port } = server.address();
  const host = address.includes(':') ? `[${address}]` : address;
  process.stdout.write(`teams subgraph at http://${host}:${port}${yoga.graphqlEndpoint}\n`);
});
const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
