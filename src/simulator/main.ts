// Runs the simulator on its own (`npm run simulator`), for load runs or a gateway in another
// process. Its settings are the `simulator` section of the gateway's file (GATEWAY_CONFIG, or
// ./gateway.config.yaml); where it listens, per deployment, SIMULATOR_PORT and SIMULATOR_HOST.
import { ConfigError, loadSimulatorSettings } from '../config.js';
import { startSimulator } from './server.js';

function listenSettings(env: NodeJS.ProcessEnv): { port: number; host: string } {
  const port = Number(env.SIMULATOR_PORT || 4010);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(`Invalid SIMULATOR_PORT (got ${JSON.stringify(env.SIMULATOR_PORT)}): a port`);
  }
  // Loopback by default; a container sets 0.0.0.0 so the gateways beside it reach it (compose.yaml).
  return { port, host: env.SIMULATOR_HOST || '127.0.0.1' };
}

let options;
try {
  options = { ...loadSimulatorSettings(), ...listenSettings(process.env) };
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`fine-tune-simulator: ${error.message}`);
  process.exit(1);
}
const simulator = await startSimulator(options);
console.log(`Fine-tune API simulator at ${simulator.url} (keys: sim-acme-key, sim-globex-key)`);
const stop = () => void simulator.stop().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
