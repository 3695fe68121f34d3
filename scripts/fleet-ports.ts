// The ports `scripts/fleet.mjs` takes, for the runs that start it beside other servers (its
// test, its bench): ten consecutive free ones, and the environment that hands them to it.
import { createServer } from 'node:net';

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

/** The script's settings for these ports, its simulator stepped only when asked. */
export function fleetEnvironment(ports: FleetPorts): Record<string, string> {
  return {
    FLEET_PORT: String(ports.balancer),
    FLEET_BASE_PORT: String(ports.gateways[0]),
    FLEET_METRICS_BASE_PORT: String(ports.metrics[0]),
    FLEET_REDIS_PORT: String(ports.redis),
    FLEET_SIMULATOR_PORT: String(ports.simulator),
    FLEET_STATS_PORT: String(ports.stats),
    FLEET_SIMULATOR_LIVING: 'false',
  };
}
