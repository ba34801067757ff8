/**
 * Baton's configuration: one closed zod schema (unknown keys are errors), all defaults here.
 * Sources, later wins: built-in defaults → YAML file (`--config` / BATON_CONFIG) → environment.
 */
import { z } from 'zod';
import { UPSTREAM_NAME } from './names.ts';
import { OidcIssuersSchema } from '../oidc/config.ts';

const Port = z.coerce.number().int().min(0).max(65535);

export const UpstreamSchema = z.strictObject({
  /** Connection string with the PROXY's own credentials; clients never see it. */
  url: z.string().regex(/^postgres(ql)?:\/\//, { message: 'must be a postgres:// connection string' }),
  /**
   * The upstream login's password, kept out of `url` (e.g. `password_FILE: /run/secrets/appdb` or
   * `password: ${APPDB_PASSWORD}`); loadConfig puts it into `url` (percent-encoded) and drops it.
   */
  password: z.string().min(1).optional(),
});

/** The credential the HTTP proxy injects upstream (the client's Baton token never goes there). */
export const HttpCredentialSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('none') }),
  /** A fixed header, e.g. `X-Api-Key`. */
  z.strictObject({ type: z.literal('header'), name: z.string().regex(/^[A-Za-z0-9-]{1,64}$/), value: z.string().min(1) }),
  z.strictObject({ type: z.literal('bearer'), token: z.string().min(1) }),
  z.strictObject({ type: z.literal('basic'), username: z.string().min(1), password: z.string() }),
  /**
   * `X-Baton-Signature: t=<unix seconds>,kid=<keyId>,v1=<hex HMAC-SHA256(secret, "<t>\n<METHOD>\n<path?query>")>`
   * (the header name is configurable); the upstream checks it and the time window.
   */
  z.strictObject({
    type: z.literal('hmac'),
    keyId: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/),
    secret: z.string().min(32),
    header: z.string().regex(/^[A-Za-z0-9-]{1,64}$/).default('X-Baton-Signature'),
  }),
]);

/** A method + path → operation/resource override of the HTTP proxy (first match wins). */
export const HttpRouteSchema = z.strictObject({
  /** Upper-case methods; absent = every method. */
  methods: z.array(z.string().regex(/^[A-Z]{1,16}$/)).min(1).optional(),
  /** A normalised upstream path (`/invoices/export`), or a prefix ending in `*` (`/admin/*`). */
  path: z.string().regex(/^\/[!-~]*$/, { message: 'must be an absolute path of printable ASCII' }),
  operation: z.string().regex(/^[a-z_]{1,32}$/).optional(),
  /** The resource to authorize instead of `http:<upstream><path>`. */
  resource: z.string().min(1).max(512).optional(),
});

export const HttpUpstreamSchema = z.strictObject({
  /** Base URL; the request's path (after `/<upstream>`) is appended to its path. */
  url: z.string().url().regex(/^https?:\/\//, { message: 'must be an http:// or https:// URL' }),
  /** Host names routed to this upstream with their whole path (real deployments); besides `/<name>/…`. */
  hosts: z.array(z.string().regex(/^[A-Za-z0-9.-]+(:\d+)?$/)).default([]),
  credential: HttpCredentialSchema.default({ type: 'none' }),
  /** Speak HTTP/2 upstream: h2c with prior knowledge for http://, h2 (ALPN) for https://. */
  http2: z.boolean().default(false),
  /** An MCP server (Streamable HTTP): JSON-RPC messages are authorized one by one (`mcp:<name>/<tool>`). */
  mcp: z.boolean().default(false),
  /** A Kubernetes API server: verbs and resources as the API server derives them (`k8s:<name>/…`). */
  kubernetes: z.boolean().default(false),
  /** The upstream matches paths case-insensitively: the proxy lower-cases them before authorizing. */
  caseInsensitive: z.boolean().default(false),
  routes: z.array(HttpRouteSchema).max(256).default([]),
  timeouts: z
    .strictObject({
      /** TCP (and TLS) connect, ms. */
      connectMs: z.number().int().min(1).default(5_000),
      /** Request sent → response headers, ms; past it → 504. */
      responseMs: z.number().int().min(1).default(30_000),
      /** No bytes either way for this long ends the exchange, ms (0 = never: long watches). */
      idleMs: z.number().int().min(0).default(300_000),
    })
    .prefault({}),
  /** Largest request body, bytes (413 beyond). */
  maxRequestBytes: z.number().int().min(0).default(10 * 1024 * 1024),
  /** Largest response body, bytes (the response is cut and the entry says so). */
  maxResponseBytes: z.number().int().min(0).default(1024 * 1024 * 1024),
});

/**
 * An IAM role Baton assumes for token holders. `resources` are what this role serves, in Baton's
 * spelling after `aws:<role>/`: `s3:<bucket>/` (the bucket), `s3:<bucket>/<prefix>/`, `dynamodb:<table>`.
 * A token's rights are cut down to them; the session policy never reaches past them.
 */
export const AwsRoleSchema = z.strictObject({
  roleArn: z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/, { message: 'must be an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)' }),
  region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, { message: 'must be an AWS region such as us-east-1' }),
  resources: z
    .array(z.string().regex(/^(s3:[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/[!-~]*|dynamodb:[A-Za-z0-9_.-]{3,255})$/, { message: 'must be s3:<bucket>/<prefix> or dynamodb:<table>' }))
    .min(1),
  /** The role's MaxSessionDuration in IAM (900-43200 s): credentials never outlive the token, nor this. */
  maxSessionSeconds: z.number().int().min(900).max(43_200).default(3_600),
  /** Sent as ExternalId when the role's trust policy requires one. */
  externalId: z.string().regex(/^[\w+=,.@:\/-]{2,1224}$/).optional(),
});

/** An upstream where the broker creates ephemeral login roles for tokens. */
export const PgCredentialUpstreamSchema = z.strictObject({
  /** The issuing login on the upstream database: CREATEROLE and the grant option on the tables it hands out. */
  adminUrl: z.string().regex(/^postgres(ql)?:\/\//, { message: 'must be a postgres:// URL' }),
  /** Where clients connect (host, port, database); default: adminUrl's. */
  connectUrl: z.string().regex(/^postgres(ql)?:\/\//, { message: 'must be a postgres:// URL' }).optional(),
  /** CONNECTION LIMIT of each role. */
  connectionLimit: z.number().int().min(1).max(1000).default(5),
});

/** `host:port` entries, as a list or one comma-separated string (environment variables). */
const HostPortList = z.preprocess(
  (v) => (typeof v === 'string' ? v.split(',').map((x) => x.trim()).filter(Boolean) : v),
  z.array(z.string().regex(/^[A-Za-z0-9.-]+:\d{1,5}$/, { message: 'must be host:port' })).min(1),
);

/**
 * Redis beyond one server (`redisUrl` / REDIS_URL): Sentinel (a master by name) or Cluster (channels
 * sharded with SPUBLISH/SSUBSCRIBE, Redis ≥ 7). At most one of `redisUrl`, `redis.sentinel`, `redis.cluster`.
 */
export const RedisTopologySchema = z
  .strictObject({
    sentinel: z
      .strictObject({ name: z.string().min(1), sentinels: HostPortList, password: z.string().min(1).optional(), sentinelPassword: z.string().min(1).optional() })
      .optional(),
    cluster: z.strictObject({ nodes: HostPortList, password: z.string().min(1).optional() }).optional(),
  })
  .refine((r) => !(r.sentinel && r.cluster), { message: 'redis.sentinel and redis.cluster exclude each other: say which one' });

export const ConfigSchema = z.strictObject({
  mode: z.enum(['dev', 'production']).default('production'),
  /** Keys, embedded Postgres and dev certificates live here. */
  dataDir: z.string().default('.baton'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  databaseUrl: z.string().optional(),
  /**
   * A read replica (or any read-only copy) for read paths that may lag: audit queries, verification,
   * trees and exports, and introspection's issued-token lookup. Never for revocation checks (they read
   * the primary-fed, Redis-fanned set) nor for the revocation feed proxies resync from.
   */
  databaseReadUrl: z.string().regex(/^postgres(ql)?:\/\//, { message: 'must be a postgres:// URL' }).optional(),
  redisUrl: z.string().optional(),
  redis: RedisTopologySchema.prefault({}),
  broker: z
    .strictObject({
      host: z.string().default('127.0.0.1'),
      port: Port.default(8080),
      /** The broker's own URL (Baton tokens name it as their issuer); default http://host:port. */
      publicUrl: z.string().url().optional(),
      policyFile: z.string().optional(),
      /**
       * The root key file; default `<dataDir>/keys.json`. Several brokers share one (a secret mount or a
       * shared volume): each re-reads it within a second of `baton keys rotate|retire`.
       */
      keysFile: z.string().optional(),
      /** Token exchanges per subject and per client, per minute. */
      rateLimit: z
        .strictObject({ perSubject: z.number().int().min(1).default(120), perClient: z.number().int().min(1).default(1200) })
        .prefault({}),
      /** POST /v1/revoke flood limits (src/revocation/limits.ts): calls per minute, rows per lineage. */
      revocationLimits: z
        .strictObject({
          perAddress: z.number().int().min(1).default(120),
          perLineage: z.number().int().min(1).default(30),
          maxOutstandingPerLineage: z.number().int().min(1).default(100),
        })
        .prefault({}),
    })
    .prefault({}),
  oidc: z.strictObject({ issuers: OidcIssuersSchema.default([]) }).prefault({}),
  /**
   * The web console at `/console` (docs/console.md): sign-in through an OIDC issuer with the
   * authorization-code flow and PKCE. `oidc.issuer` must be one of `oidc.issuers` (the token it returns
   * is exchanged at POST /v1/token like any other). In dev mode without `oidc`, the dev issuer signs
   * the console in (and a pasted token is accepted).
   */
  console: z
    .strictObject({
      enabled: z.boolean().default(true),
      oidc: z
        .strictObject({
          issuer: z.string().url(),
          /** The console's client id at the issuer (a public client: PKCE; or confidential with `clientSecret`). */
          clientId: z.string().min(1),
          clientSecret: z.string().min(1).optional(),
          scope: z.string().min(1).default('openid'),
          /** Which token of the issuer's response is exchanged for a Baton token (its `aud` must be one the issuer entry accepts). */
          subjectToken: z.enum(['access_token', 'id_token']).default('access_token'),
        })
        .optional(),
    })
    .prefault({}),
  /** Just-in-time approvals (rules live in the grant policy's `approvals` section). */
  approvals: z
    .strictObject({
      /**
       * Slack-compatible webhook notified of every pending request (JSON `{text, approval}`), signed
       * with `X-Baton-Signature: sha256=<hex HMAC of the body with secret>`; retried, never blocking.
       */
      webhook: z.strictObject({ url: z.string().url(), secret: z.string().min(16) }).optional(),
    })
    .prefault({}),
  /** Inline masking (rules live in the grant policy's `masking` section). */
  masking: z
    .strictObject({
      /** Key of the `hmac` method (≥ 32 chars); default: generated once into `<dataDir>/masking-hmac.key`. */
      hmacKey: z.string().min(32).optional(),
    })
    .prefault({}),
  /** Native AWS credentials minted from a token (POST /v1/credentials/aws, src/credentials/). */
  aws: z
    .strictObject({
      roles: z.record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, { message: 'role names are 1-64 of [A-Za-z0-9_.-]' }), AwsRoleSchema).default({}),
    })
    .prefault({}),
  /** Native PostgreSQL credentials minted from a token (POST /v1/credentials/postgres, src/credentials/). */
  credentials: z
    .strictObject({
      /** Issuances (AWS and PostgreSQL together) per token lineage per minute; more are 429. */
      perTokenPerMinute: z.number().int().min(1).default(30),
      postgres: z
        .strictObject({
          upstreams: z.record(z.string().regex(UPSTREAM_NAME), PgCredentialUpstreamSchema).default({}),
          /** How often expired roles are looked for (revoked ones are reaped as the revocation arrives). */
          reapIntervalSeconds: z.number().min(0.1).max(60).default(1),
          /** Live roles per token lineage (children share it); more are 429 until some expire or are revoked. */
          maxLiveRolesPerToken: z.number().int().min(1).default(20),
        })
        .prefault({}),
    })
    .prefault({}),
  audit: z
    .strictObject({
      /**
       * `default`: a read (or a write inside an explicit transaction block) is forwarded while its
       * entry is in flight and its answers (or the block's COMMIT) are held until the entry is
       * durable; `strict`: every entry is durable before its statement is forwarded.
       */
      ordering: z.enum(['default', 'strict']).default('default'),
    })
    .prefault({}),
  proxy: z
    .strictObject({
      host: z.string().default('127.0.0.1'),
      port: Port.default(6432),
      upstreams: z.record(z.string().regex(UPSTREAM_NAME), UpstreamSchema).default({}),
      tls: z.strictObject({ certFile: z.string(), keyFile: z.string() }).optional(),
      /** Allow cleartext passwords (tokens) on a non-loopback listener without TLS. Never in production. */
      allowInsecure: z.boolean().default(false),
      /** Where the proxy gets the broker's public keys: a URL (cached, refreshed) or a file. */
      keySetUrl: z.string().url().optional(),
      keySetFile: z.string().optional(),
      /** Fail closed when revocation state is older than this (also bounds the key set's age). */
      revocationStalenessSeconds: z.number().min(1).max(300).default(5),
      /** A standalone proxy polls the broker's key set this often (retirements end sessions). Default 2. */
      keySetRefreshSeconds: z.number().min(0.2).max(60).optional(),
      /**
       * `baton proxy`'s admin HTTP listener: /healthz, /readyz, /metrics (src/proxy/admin/server.ts).
       * Off unless `port` is set (0 = any free port); loopback unless `host` says otherwise.
       */
      admin: z.strictObject({ host: z.string().default('127.0.0.1'), port: Port }).optional(),
      /** Where the proxy resyncs revocations: the broker's base URL (also the approval links it hands out). */
      brokerUrl: z.string().url().optional(),
      /**
       * The grant policy whose `masking` and `approvals` sections the proxy enforces; default
       * `broker.policyFile` (the same file), the seeded dev policy in dev mode.
       */
      policyFile: z.string().optional(),
      /** Pinned upstream `statement_timeout` (ms) for every proxied session; 0 = none. */
      statementTimeoutMs: z.number().int().min(0).default(30_000),
      /**
       * Start even if an upstream login is a superuser or holds other dangerous privileges (rule 8:
       * the upstream's own privileges are the second lock). Off by default; `baton proxy` refuses.
       */
      allowSuperuserUpstream: z.boolean().default(false),
      /**
       * `proxy`: sessions log in upstream as the upstream's configured login. `per-token`: as an
       * ephemeral role holding exactly the token chain's table rights (made with
       * `credentials.postgres.upstreams.<name>`, required for every upstream), so the database itself
       * refuses what the token does not allow even if the classifier were wrong.
       */
      upstreamIdentity: z.enum(['proxy', 'per-token']).default('proxy'),
      /**
       * `session`: each client session holds its own upstream connection. `transaction`: sessions
       * share the connections of `pool` between transactions (like pgbouncer's transaction mode);
       * statements that leave session state (session SET, SQL PREPARE, LISTEN, temporary tables,
       * session advisory locks, WITH HOLD cursors) are refused (docs/pooling.md).
       */
      pooling: z.enum(['session', 'transaction']).default('session'),
      /** Upstream connections under `pooling: transaction`, per upstream identity (login + database). */
      pool: z
        .strictObject({
          /** Most upstream connections per upstream identity. */
          size: z.coerce.number().int().min(1).max(10_000).default(20),
          /** Longest wait for a free connection before the client is told and disconnected (53300), ms. */
          acquireTimeoutMs: z.number().int().min(10).default(30_000),
          /** Idle upstream connections are closed after this long, ms. */
          idleTimeoutMs: z.number().int().min(1_000).default(60_000),
          /** Protocol-level prepared statements kept per upstream connection (least recently used closed beyond). */
          maxStatementsPerConnection: z.number().int().min(1).default(256),
          /**
           * A session quiet this long inside a transaction is ended (25P03): it would keep a shared
           * connection from every other session. ms; 0 = never.
           */
          idleInTransactionTimeoutMs: z.number().int().min(0).default(60_000),
        })
        .prefault({}),
      /** The HTTP enforcement proxy (REST, MCP, Kubernetes): off unless it has upstreams (or in dev). */
      http: z
        .strictObject({
          host: z.string().default('127.0.0.1'),
          port: Port.default(8081),
          upstreams: z.record(z.string().regex(UPSTREAM_NAME), HttpUpstreamSchema).default({}),
          /** Client connections in total; more are refused (503). */
          maxConnections: z.number().int().min(1).default(10_000),
          /** Verified tokens kept in memory (by their text), so a request costs no signature check. */
          tokenCacheSize: z.number().int().min(1).default(4_096),
        })
        .prefault({}),
      /** Per-client fairness and resource limits (each refusal is a Postgres error naming its limit). */
      limits: z
        .strictObject({
          /** Sessions per token lineage (the authority token id: attenuated children share it). */
          maxSessionsPerToken: z.number().int().min(1).default(20),
          /** Connections (in start-up or authenticated) per client IP address. */
          maxConnectionsPerAddress: z.number().int().min(1).default(50),
          /** Connections still in start-up (not yet authenticated); more are refused at once. */
          maxStartingConnections: z.number().int().min(1).default(64),
          /** Client connections in total. */
          maxConnections: z.number().int().min(1).default(1_000),
          /** From TCP accept to authenticated (covers slowloris sockets), ms. */
          startupTimeoutMs: z.number().int().min(100).default(10_000),
          /** A session with no traffic either way for this long is ended (57P05), ms; 0 = never. */
          idleSessionTimeoutMs: z.number().int().min(0).default(30 * 60_000),
          /** Largest SQL text in a Query or Parse message, bytes; larger → 54000, session continues. */
          maxStatementBytes: z.number().int().min(1024).default(1024 * 1024),
          /** Statements at least this long (chars) are classified in a worker thread. */
          offThreadClassifyChars: z.number().int().min(1).default(16 * 1024),
          /** Worker threads for large statements. */
          classifyWorkers: z.number().int().min(1).max(16).default(2),
          /** Time budget for classifying one large statement, ms; past it → denied. */
          classifyTimeoutMs: z.number().int().min(10).default(5_000),
        })
        .prefault({}),
    })
    .prefault({}),
});

export type Config = z.output<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;
