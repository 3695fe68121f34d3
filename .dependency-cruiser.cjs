// The architecture as a rule (docs/architecture.md draws it): each layer imports only the layers
// below it, and the leaves (errors, config, observability, generated types) import no feature.
// `npm test` runs it (npm run check; alone: npm run deps); there is no exception list, and type-only
// imports count (tsPreCompilationDeps).
/** Layers from the top; a file may import its own layer and any layer after it. */
const LAYERS = [
  ['src/(main|server|mcp-stdio)\\.ts$'],
  ['src/http/'],
  ['src/mcp/'],
  ['src/graphql/'],
  ['src/resolvers/'],
  ['src/context\\.ts$'],
  ['src/auth/'],
  ['src/fleet/'],
  ['src/subscriptions/', 'src/loaders/'],
  ['src/fine-tune-jobs/'],
  ['src/operation/'],
  ['src/upstream/'],
  ['src/(errors|config)\\.ts$', 'src/observability/', 'src/generated/'],
];
const pattern = (paths) => `^(${paths.join('|')})`;
const upward = LAYERS.slice(1).map((layer, i) => ({
  name: `layer-${i + 1}-points-down`,
  comment: `${layer.join(', ')} may import only the layers below it`,
  severity: 'error',
  from: { path: pattern(layer) },
  to: { path: pattern(LAYERS.slice(0, i + 1).flat()) },
}));
module.exports = {
  forbidden: [
    ...upward,
    {
      name: 'peers-stay-apart',
      comment: 'loaders and subscriptions are peers: neither imports the other',
      severity: 'error',
      from: { path: '^src/(loaders|subscriptions)/' },
      to: { path: '^src/(loaders|subscriptions)/', pathNot: '^src/$1/' },
    },
    {
      name: 'leaves-import-no-feature',
      severity: 'error',
      from: { path: '^src/((errors|config)\\.ts$|observability/|generated/)' },
      to: { path: '^src/', pathNot: '^src/((errors|config)\\.ts$|observability/|generated/)' },
    },
    {
      name: 'simulator-stands-apart',
      comment:
        'the stand-in for the upstream: only the entry point starts it; it shares only the records and the life cycle',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/(simulator/|main\\.ts$)' },
      to: { path: '^src/simulator/' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^src/generated/' },
  },
};
