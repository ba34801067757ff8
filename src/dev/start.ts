/** Everything `baton dev` starts, in order, and the banner it prints. */
import type { Config } from '../config/schema.ts';
import { startBroker } from '../broker/server.ts';

export interface DevRunning {
  banner: string;
  close(): Promise<void>;
}

export async function startDev(config: Config): Promise<DevRunning> {
  const broker = await startBroker(config, { devIssuer: true });
  const b = broker.url;
  const banner = `
  Baton DEV MODE — the dev OIDC issuer at ${b}/dev/oidc mints tokens for anyone. Never expose it.

  broker   ${b}          (database: ${broker.db.kind}, shared state: ${broker.state.kind})
  data     ${config.dataDir}

  Try:
    JWT=$(npx baton dev-token --sub alice --groups engineers --broker ${b})
    TOKEN=$(curl -s ${b}/v1/token \\
      -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange \\
      -d subject_token_type=urn:ietf:params:oauth:token-type:jwt --data-urlencode subject_token=$JWT | jq -r .access_token)
    curl -s ${b}/.well-known/baton-keys.json
`;
  return {
    banner,
    async close() {
      await broker.close();
    },
  };
}
