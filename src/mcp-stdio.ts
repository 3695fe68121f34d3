#!/usr/bin/env node
// The gateway's MCP tools for assistants that speak only stdio (`npm run mcp`, or the
// `fine-tune-gateway-mcp` bin): it relays each message between stdio and a running gateway's /mcp,
// with the SDK's own transports on both sides. The tools, the checks and the rights are the
// gateway's: this process adds none and keeps none.
//
//   FINE_TUNE_GATEWAY_URL    the gateway's /mcp (default http://localhost:4000/mcp), or --url
//   FINE_TUNE_GATEWAY_TOKEN  sent as `Authorization: Bearer …`: an API key or a token from the
//                            identity provider; unset, the gateway's own key serves (if it has one)
import { parseArgs } from 'node:util';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import {
  isJSONRPCRequest,
  isJSONRPCResultResponse,
  LATEST_PROTOCOL_VERSION,
  type JSONRPCMessage,
} from '@modelcontextprotocol/sdk/types.js';

const DEFAULT_URL = 'http://localhost:4000/mcp';

function fail(message: string): never {
  // stdout carries the protocol: everything for a person goes to stderr.
  console.error(`fine-tune-gateway-mcp: ${message}`);
  process.exit(1);
}

function gatewayUrl(): URL {
  let values;
  try {
    ({ values } = parseArgs({ options: { url: { type: 'string' } }, strict: true }));
  } catch (error) {
    fail(`${(error as Error).message}; usage: fine-tune-gateway-mcp [--url http://host:4000/mcp]`);
  }
  const text = values.url ?? process.env.FINE_TUNE_GATEWAY_URL ?? DEFAULT_URL;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    fail(`not a URL: ${JSON.stringify(text)} (FINE_TUNE_GATEWAY_URL or --url, e.g. ${DEFAULT_URL})`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    fail(`the gateway's URL must be http(s): ${text}`);
  return url;
}

async function main(): Promise<void> {
  const url = gatewayUrl();
  const token = process.env.FINE_TUNE_GATEWAY_TOKEN?.trim();
  const gateway = new StreamableHTTPClientTransport(url, {
    ...(token && { requestInit: { headers: { Authorization: `Bearer ${token}` } } }),
  });
  const assistant = new StdioServerTransport();
  /** The ids of `initialize` requests, whose answers say which protocol version later messages declare. */
  const initializing = new Set<string | number>();

  assistant.onmessage = (message: JSONRPCMessage) => {
    if (isJSONRPCRequest(message) && message.method === 'initialize') initializing.add(message.id);
    gateway.send(message).catch((error: unknown) => {
      // The gateway is down, or refused the request (HTTP 4xx/5xx): the assistant gets an error
      // answer to its request instead of waiting for one that never comes.
      const reason = error instanceof Error ? error.message : String(error);
      console.error(`fine-tune-gateway-mcp: ${url.href}: ${reason}`);
      if (isJSONRPCRequest(message)) {
        void assistant.send({
          jsonrpc: '2.0',
          id: message.id,
          error: { code: -32000, message: `The gateway at ${url.href} did not answer: ${reason}` },
        });
      }
    });
  };
  gateway.onmessage = (message: JSONRPCMessage) => {
    if (isJSONRPCResultResponse(message) && initializing.delete(message.id)) {
      const version = (message.result as { protocolVersion?: unknown }).protocolVersion;
      gateway.setProtocolVersion(typeof version === 'string' ? version : LATEST_PROTOCOL_VERSION);
    }
    void assistant.send(message);
  };
  gateway.onerror = (error) => console.error(`fine-tune-gateway-mcp: ${url.href}: ${error.message}`);
  // The assistant closed stdin: nothing more will come.
  assistant.onclose = () => {
    void gateway.close().finally(() => process.exit(0));
  };

  await gateway.start();
  await assistant.start();
  console.error(`fine-tune-gateway-mcp: relaying stdio to ${url.href}`);
}

await main();
