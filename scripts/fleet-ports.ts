// The ports `scripts/fleet.mjs` takes, for the runs that start it beside other servers (its
// test, its bench): ten consecutive free ones, and the environment that hands them to it.
import { createServer } from 'node:net';
import type { GatewayConfigFile } from '../src/config.js';
import { mergeConfig, readConfigFile, writeConfigFile } from './config-file.js';

export interface FleetPorts {
  balancer: number;
  gateways: [number, number, number];
  metrics: [number, number, number];
  redis: number;
  simulator: number;
  stats: number;
}

/** Whether the port can be listened on now, on loopback. */
export function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Ten consecutive free ports, laid out as the fleet uses them. */
export async function freeFleetPorts(): Promise<FleetPorts> {
  for (;;) {
    // Below the kernel's ephemeral range (32768 and up), where other tests' port-0 servers land.
    const base = 10_000 + Math.floor(Math.random() * 22_000);
    const free = await Promise.all(Array.from({ length: 10 }, (_, i) => isFree(base + i)));
    if (!free.every(Boolean)) continue;
    return {
      balancer: base,
      gateways: [base + 1, base + 2, base + 3],
      metrics: [base + 4, base + 5, base + 6],
      redis: base + 7,
      simulator: base + 8,
      stats: base + 9,
    };
  }
}

/**
 * The script's settings for these ports, and its file (the fleet's own, with `config` over it)
 * with the simulator's population still: the run counts jobs.
 */
export function fleetEnvironment(ports: FleetPorts, config: GatewayConfigFile = {}): Record<string, string> {
  const fleet = readConfigFile(new URL('../examples/fleet/gateway.config.yaml', import.meta.url));
  return {
    FLEET_PORT: String(ports.balancer),
    FLEET_BASE_PORT: String(ports.gateways[0]),
    FLEET_METRICS_BASE_PORT: String(ports.metrics[0]),
    FLEET_REDIS_PORT: String(ports.redis),
    FLEET_SIMULATOR_PORT: String(ports.simulator),
    FLEET_STATS_PORT: String(ports.stats),
    GATEWAY_CONFIG: writeConfigFile(
      mergeConfig(mergeConfig(fleet, { simulator: { living: false } }), config),
    ),
  };
}
