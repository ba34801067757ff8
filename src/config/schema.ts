/**
 * Baton's configuration: one closed zod schema (unknown keys are errors), all defaults here.
 * Sources, later wins: built-in defaults → YAML file (`--config` / BATON_CONFIG) → environment.
 */
import { z } from 'zod';
import { OidcIssuersSchema } from '../oidc/config.ts';

const Port = z.coerce.number().int().min(0).max(65535);

export const UpstreamSchema = z.strictObject({
  /** Connection string with the PROXY's own credentials; clients never see it. */
  url: z.string().regex(/^postgres(ql)?:\/\//, { message: 'must be a postgres:// connection string' }),
});

export const ConfigSchema = z.strictObject({
  mode: z.enum(['dev', 'production']).default('production'),
  /** Keys, embedded Postgres and dev certificates live here. */
  dataDir: z.string().default('.baton'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  databaseUrl: z.string().optional(),
  redisUrl: z.string().optional(),
  broker: z
    .strictObject({
      host: z.string().default('127.0.0.1'),
      port: Port.default(8080),
      /** The broker's own URL (Baton tokens name it as their issuer); default http://host:port. */
      publicUrl: z.string().url().optional(),
      policyFile: z.string().optional(),
      /** Token exchanges per subject and per client, per minute. */
      rateLimit: z
        .strictObject({ perSubject: z.number().int().min(1).default(120), perClient: z.number().int().min(1).default(1200) })
        .prefault({}),
    })
    .prefault({}),
  oidc: z.strictObject({ issuers: OidcIssuersSchema.default([]) }).prefault({}),
  proxy: z
    .strictObject({
      host: z.string().default('127.0.0.1'),
      port: Port.default(6432),
      upstreams: z.record(z.string().regex(/^[A-Za-z0-9_-]+$/), UpstreamSchema).default({}),
      tls: z.strictObject({ certFile: z.string(), keyFile: z.string() }).optional(),
      /** Allow cleartext passwords (tokens) on a non-loopback listener without TLS. Never in production. */
      allowInsecure: z.boolean().default(false),
      /** Where the proxy gets the broker's public keys: a URL (cached, refreshed) or a file. */
      keySetUrl: z.string().url().optional(),
      keySetFile: z.string().optional(),
      /** Fail closed when revocation state is older than this. */
      revocationStalenessSeconds: z.number().min(1).max(300).default(5),
      /** Where the proxy resyncs revocations: the broker's base URL. */
      brokerUrl: z.string().url().optional(),
    })
    .prefault({}),
});

export type Config = z.output<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;
