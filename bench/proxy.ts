// A pass-through HTTP proxy: the cheapest Node intermediary there is, so the floor any Node
// layer in front of the REST API (our gateway included) starts from. Bytes are piped, not parsed.
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream';

const target = new URL(process.env.PROXY_TARGET ?? 'http://127.0.0.1:4010');
const agent = new Agent({ keepAlive: true, maxSockets: 64 });

const server = createServer((req, res) => {
  const upstream = request(
    {
      agent,
      host: target.hostname,
      port: target.port,
      method: req.method,
      path: req.url,
      headers: { ...req.headers, host: target.host },
    },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      // pipeline, not pipe: a client that leaves mid-answer must free the upstream socket too.
      pipeline(answer, res, () => undefined);
    },
  );
  upstream.on('error', () => {
    if (!res.headersSent) res.writeHead(502).end();
    else res.destroy();
  });
  res.on('close', () => {
    if (!res.writableFinished) upstream.destroy();
  });
  pipeline(req, upstream, () => undefined);
});

server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  console.log(`Pass-through proxy at http://127.0.0.1:${port} -> ${target.origin}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
