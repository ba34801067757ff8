/** `baton serve` — the broker, configured from file/env (production settings). */
import { assertModeFitsEnvironment, loadConfig } from '../config/load.ts';
import { startBroker } from '../broker/server.ts';
import { onShutdown } from '../util/shutdown.ts';
import { defineCommand } from './command.ts';

export const serve = defineCommand(
  'run the broker (config from --config / BATON_CONFIG and the environment)',
  { name: 'serve', usage: 'usage: baton serve [--config FILE]', options: { config: { type: 'string' } } },
  async ({ values }) => {
    const config = loadConfig({ file: values.config });
    assertModeFitsEnvironment(config); // before anything starts
    const broker = await startBroker(config);
    process.stderr.write(`baton: broker listening on ${broker.url} (database: ${broker.db.kind}, shared state: ${broker.state.kind})\n`);
    onShutdown(() => broker.close());
    return -1;
  },
);
