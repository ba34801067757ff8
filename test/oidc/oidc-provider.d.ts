// oidc-provider ships no type declarations; this covers the little the tests use.
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  interface ProviderInstance {
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    on(event: 'server_error', listener: (ctx: unknown, err: Error) => void): this;
  }
  interface ProviderConstructor {
    new (issuer: string, configuration: Record<string, unknown>): ProviderInstance;
  }
  const Provider: ProviderConstructor;
  export default Provider;
}
