// The real entry point, as `npm start` runs it: a newcomer's first experience, and the
// operator's refusal messages for a bad configuration.
import { createServer, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startEntryPoint, stopEntryPoints, waitForOutput, writeConfigFile } from './entry-point-process.js';

afterEach(() => stopEntryPoints());

/** The gateway as `npm start` runs it, with `output()` as both streams so far. */
function startMain(env: Record<string, string>) {
  const main = startEntryPoint(env);
  return { ...main, output: () => ({ stdout: main.stdout(), stderr: main.stderr() }) };
}

describe('npm start with nothing configured', () => {
  it('serves demo data from the built-in simulator, shows Sandbox, and stops cleanly on SIGTERM', async () => {
    const main = startMain({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn' });
    const [, url] = await waitForOutput(() => main.output().stdout, /ready at (http:\/\/\S+\/graphql)/);
    // The lines after "ready" may arrive in a later chunk of the pipe.
    await waitForOutput(() => main.output().stdout, /built-in simulator: demo data/);

    // A client without a key gets the demo organization's jobs.
    const response = await fetch(url!, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ fineTuneJobs(limit: 2) { id orgUuid } }' }),
    });
    const body = (await response.json()) as { data: { fineTuneJobs: { orgUuid: string }[] } };
    expect(body.data.fineTuneJobs).toHaveLength(2);
    expect(body.data.fineTuneJobs[0]!.orgUuid).toBe('0a1b2c3d-4e5f-6789-abcd-ef0123456789');

    // A browser gets the Sandbox landing page.
    const page = await fetch(url!, { headers: { accept: 'text/html' } });
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(await page.text()).toContain('embeddable-sandbox');

    // The hosted Sandbox may call a local gateway (CORS).
    const preflight = await fetch(url!, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://studio.apollographql.com',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type',
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('https://studio.apollographql.com');

    main.child.kill('SIGTERM');
    const [code] = await main.exited;
    expect(code).toBe(0);
  });
});

describe('a configuration the gateway refuses', () => {
  it.each([
    [{ NODE_ENV: 'production' }, /NODE_ENV=production needs ATAI_API_URL and\/or ATAI_API_KEY/],
    [{ PORT: 'eighty' }, /Invalid PORT \(got "eighty"\)/],
    [{ ATAI_API_URL: 'ftp://example.com' }, /Invalid ATAI_API_URL/],
    [
      { UPSTREAM_TIMEOUT_MS: '5000' },
      /^fine-tune-gateway: UPSTREAM_TIMEOUT_MS is now upstream\.timeoutMs in gateway\.config\.yaml$/,
    ],
    [
      { GATEWAY_CONFIG: '/nowhere/gateway.config.yaml' },
      /Cannot read GATEWAY_CONFIG=\/nowhere\/gateway\.config\.yaml \(ENOENT\)/,
    ],
    [
      { GATEWAY_CONFIG: writeConfigFile({ upstream: { timeoutMs: -5 } }) },
      /Invalid upstream\.timeoutMs in \S+ \(got -5\)/,
    ],
    [
      { GATEWAY_CONFIG: writeConfigFile('upstream:\n  timeout: 5000\n') },
      /Unknown key upstream\.timeout in \S+$/,
    ],
    [{ GATEWAY_CONFIG: writeConfigFile('upstream: [\n') }, /Cannot read \S+: not YAML: /],
  ])('%o stops the start with one clear line', async (env, message) => {
    const main = startMain(env);
    const [code] = await main.exited;
    const { stderr, stdout } = main.output();
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr.trim()).toMatch(message);
  });

  it('stops with one clear line when its port is taken', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as AddressInfo;
    try {
      const main = startMain({
        PORT: String(port),
        HOST: '127.0.0.1',
        ATAI_API_URL: 'http://127.0.0.1:9/v0.5',
      });
      const [code] = await main.exited;
      const { stderr } = main.output();
      expect(code).toBe(1);
      expect(stderr.trim().split('\n')).toEqual([
        `fine-tune-gateway: cannot listen on 127.0.0.1:${port} (EADDRINUSE)`,
      ]);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('never prints the key it was given, even when refusing it', async () => {
    const main = startMain({ ATAI_API_KEY: 'secret-key-123', PORT: '99999' });
    const [code] = await main.exited;
    expect(code).toBe(1);
    expect(main.output().stderr).toMatch(/Invalid PORT/);
    expect(main.output().stderr).not.toContain('secret-key-123');
  });
});
