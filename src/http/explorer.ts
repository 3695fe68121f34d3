// The gateway's own GraphQL explorer: GraphiQL from its npm package, with React's UMD builds,
// served from node_modules at fixed, versioned paths under /explorer. Nothing the page loads
// comes from another host (its CSS inlines its fonts; its Content-Security-Policy allows only
// this origin), so it works offline, unlike Apollo Sandbox, which loads from Apollo's servers.
// Also here: the landing page Apollo Server shows at /graphql in a browser, either GraphiQL
// (explorer.page: graphiql) or Sandbox with a bar linking to GraphiQL (the default).
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { ApolloServerPlugin, BaseContext, GraphQLServerContext } from '@apollo/server';
import { ApolloServerPluginLandingPageLocalDefault } from '@apollo/server/plugin/landingPage/default';
import type { FastifyInstance } from 'fastify';
import type { Explorer } from '../config.js';

/** Where GraphiQL is served on its own, whatever the landing page at /graphql is. */
export const EXPLORER_PATH = '/explorer';

const require = createRequire(import.meta.url);

interface Asset {
  /** The URL path, relative to the site root (no leading slash), versioned: cached for good. */
  path: string;
  file: string;
  contentType: string;
}

/**
 * A file of an installed package, found from its package.json (these packages' `exports` do
 * not list their UMD files), so it resolves the same from src/ under tsx and from dist/.
 */
function packageAsset(name: string, file: string, contentType: string): Asset {
  const manifest = require.resolve(`${name}/package.json`);
  const { version } = require(manifest) as { version: string };
  return {
    path: `${EXPLORER_PATH.slice(1)}/${name}@${version}/${path.basename(file)}`,
    file: path.join(path.dirname(manifest), file),
    contentType,
  };
}

const JS = 'text/javascript; charset=utf-8';
const ASSETS = {
  react: packageAsset('react', 'umd/react.production.min.js', JS),
  reactDom: packageAsset('react-dom', 'umd/react-dom.production.min.js', JS),
  graphiql: packageAsset('graphiql', 'graphiql.min.js', JS),
  graphiqlCss: packageAsset('graphiql', 'graphiql.min.css', 'text/css; charset=utf-8'),
};

const DEFAULT_QUERY = `# GraphiQL, served by this gateway: it loads nothing
# from another host, so it works offline.
#
# Your key: under Headers, enter
#   { "Authorization": "Bearer <your API key>" }
# It goes with every request (and over WebSocket)
# and is not stored. Without one, the gateway's own
# key answers reads, if it has one (the built-in
# simulator's demo organization).
#
# Run: Ctrl-Enter. Subscriptions run over WebSocket:
#   subscription {
#     fineTuneJobsChanged { change job { id status } }
#   }

query RecentJobs {
  fineTuneJobs(limit: 5) {
    id
    name
    status
    updatedAt
  }
}
`;

// The endpoint is found from the page's own URL (it is served at /graphql, or at /explorer
// beside it), so the page works behind a proxy that adds a path prefix. Subscriptions: GraphiQL
// opens a graphql-ws socket to the same path and sends the Headers tab as its connection
// parameters, where the gateway reads `Authorization`.
// GraphiQL reads the editor's operations 100 ms after an edit: a run sooner (a paste, then
// Ctrl-Enter) hands the fetcher the previous text's operation name and parsed document, so the
// gateway refused a valid query ("Unknown operation named ...") and a new subscription went
// over HTTP. The fetcher parses the text it sends (with the graphql module GraphiQL exports)
// and keeps the name only if the text defines it, or takes the only operation's.
const BOOT_SCRIPT = `(function () {
  var endpoint = new URL('graphql', window.location.href).href;
  var send = GraphiQL.createFetcher({
    url: endpoint,
    subscriptionUrl: endpoint.replace(/^http/, 'ws'),
  });
  var graphql = GraphiQL.GraphQL;
  function parsed(query) {
    try {
      return graphql.parse(query);
    } catch (error) {
      return undefined; // The gateway answers with the syntax error.
    }
  }
  function fetcher(params, options) {
    var documentAST = parsed(params.query);
    var names = (documentAST ? documentAST.definitions : [])
      .filter(function (definition) { return definition.kind === graphql.Kind.OPERATION_DEFINITION; })
      .map(function (operation) { return operation.name ? operation.name.value : undefined; });
    var operationName = names.indexOf(params.operationName) !== -1 ? params.operationName
      : names.length === 1 ? names[0] : undefined;
    // The parsed text also decides the transport: a subscription goes over the socket.
    return send(
      Object.assign({}, params, { operationName: operationName }),
      Object.assign({}, options, { documentAST: documentAST }),
    );
  }
  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: ${JSON.stringify(DEFAULT_QUERY)},
      defaultEditorToolsVisibility: 'headers',
      shouldPersistHeaders: false,
    }),
  );
})();`;

const BOOT_HASH = createHash('sha256').update(BOOT_SCRIPT).digest('base64');

/**
 * Only this origin, for everything: a script, a stylesheet, a font or a fetch to another host is
 * refused by the browser. `'self'` covers the same origin's ws: and wss: too. GraphiQL sets
 * inline styles, and its CSS carries its fonts as data: URLs.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  `script-src 'self' 'sha256-${BOOT_HASH}'`,
  "style-src 'self' 'unsafe-inline'",
  "font-src 'self' data:",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

/**
 * The GraphiQL page. Its URLs are relative, and resolve the same from /graphql and /explorer
 * (both at the root).
 */
export const GRAPHIQL_HTML = `<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta http-equiv="Content-Security-Policy" content="${CONTENT_SECURITY_POLICY}" />
    <meta name="viewport" content="width=device-width,initial-scale=1" />
    <title>Fine-tune jobs gateway · GraphiQL</title>
    <link rel="icon" href="data:," />
    <link rel="stylesheet" href="${ASSETS.graphiqlCss.path}" />
    <style>
      body { margin: 0; }
      #graphiql { height: 100vh; }
    </style>
  </head>
  <body>
    <div id="graphiql">Loading GraphiQL…</div>
    <noscript>GraphiQL needs JavaScript.</noscript>
    <script src="${ASSETS.react.path}"></script>
    <script src="${ASSETS.reactDom.path}"></script>
    <script src="${ASSETS.graphiql.path}"></script>
    <script>${BOOT_SCRIPT}</script>
  </body>
</html>
`;

/** GraphiQL at /explorer and its files under /explorer/, only where a landing page is shown. */
export function registerExplorer(app: FastifyInstance): void {
  app.get(EXPLORER_PATH, (_request, reply) =>
    reply
      .type('text/html; charset=utf-8')
      // The page is small and names the versioned files: always revalidated.
      .header('cache-control', 'no-cache')
      .header('content-security-policy', `${CONTENT_SECURITY_POLICY}; frame-ancestors 'self'`)
      .header('x-content-type-options', 'nosniff')
      .send(GRAPHIQL_HTML),
  );
  for (const asset of Object.values(ASSETS)) {
    // Read on first use and kept (about 1.5 MB in all): most gateways never serve them.
    let body: Promise<Buffer> | undefined;
    app.get(`/${asset.path}`, async (_request, reply) => {
      body ??= readFile(asset.file);
      return (
        reply
          .type(asset.contentType)
          // The version is in the path: a new one is a new URL.
          .header('cache-control', 'public, max-age=31536000, immutable')
          .header('x-content-type-options', 'nosniff')
          .send(await body)
      );
    });
  }
}

/** What Sandbox's page gets above it: a bar linking to GraphiQL, which works offline. */
function withGraphiqlLink(html: string): string {
  const nonce = /nonce="([^"]+)"/.exec(html)?.[1];
  const target = '<div id="embeddableSandbox"></div>';
  if (nonce === undefined || !html.includes(target)) return html;
  const bar = `<style nonce="${nonce}">
  #embeddableSandbox { top: 2rem; height: calc(100vh - 2rem); }
  .fallback { margin-top: 2rem; }
  #gateway-explorer-bar {
    position: absolute; top: 0; left: 0; right: 0; height: 2rem; box-sizing: border-box;
    padding: 0.4rem 1rem; font: 14px/1.2 system-ui, sans-serif; background: #f4f6f8;
    border-bottom: 1px solid #d9dee4;
  }
</style>
<div id="gateway-explorer-bar">
  Apollo Sandbox loads from Apollo's servers and needs the internet.
  Offline, or to keep everything on this machine:
  <a href="${EXPLORER_PATH.slice(1)}">GraphiQL, served by this gateway</a>.
</div>
`;
  return html.replace(target, `${bar}${target}`);
}

/**
 * Apollo Server's landing page (a browser's GET of /graphql): GraphiQL, or Apollo's embedded
 * Sandbox (its endpoint this page's URL, no cookies sent) with a link to GraphiQL.
 */
export function explorerLandingPage(explorer: Explorer): ApolloServerPlugin<BaseContext> {
  if (explorer === 'graphiql') {
    return {
      async serverWillStart() {
        return {
          async renderLandingPage() {
            return { html: GRAPHIQL_HTML };
          },
        };
      },
    };
  }
  const sandbox = ApolloServerPluginLandingPageLocalDefault({ embed: true, includeCookies: false });
  return {
    async serverWillStart(service: GraphQLServerContext) {
      const listener = await sandbox.serverWillStart?.(service);
      const page = await listener?.renderLandingPage?.();
      if (!page) return;
      return {
        async renderLandingPage() {
          const { html } = page;
          // Apollo's page carries a new CSP nonce each time it is rendered.
          return { html: async () => withGraphiqlLink(typeof html === 'string' ? html : await html()) };
        },
      };
    },
  };
}
