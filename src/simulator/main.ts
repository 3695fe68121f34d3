// Runs the simulator on its own (`npm run simulator`), for load runs or a gateway in another process.
import { startSimulator } from './server.js';

const simulator = await startSimulator({
  port: Number(process.env.SIMULATOR_PORT ?? 4010),
  // Loopback by default; a container sets 0.0.0.0 so the gateways beside it reach it (compose.yaml).
  host: process.env.SIMULATOR_HOST ?? '127.0.0.1',
  paceMs: Number(process.env.SIMULATOR_PACE_MS ?? 5000),
  jobsPerOrganization: Number(process.env.SIMULATOR_JOBS ?? 24),
  // Off by default: load runs count jobs. `npm start`'s embedded simulator has it on.
  living: process.env.SIMULATOR_LIVING === 'true',
});
console.log(`Fine-tune API simulator at ${simulator.url} (keys: sim-acme-key, sim-globex-key)`);
const stop = () => void simulator.stop().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
