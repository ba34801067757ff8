# syntax=docker/dockerfile:1
# Baton: one image for `baton serve` (broker), `baton proxy`, `baton migrate` and `baton dev`.
#   docker build -t baton:local .            (docker-compose.yml builds it; docs/deploy.md)
# Stage 1 compiles TypeScript to dist/ with the dev dependencies; stage 2 holds production
# dependencies and the compiled output only, and runs as the non-root user `node` (uid 1000).
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY . .
# install scripts skipped (`prepare` would build before we ask it to); then the build proper
RUN npm ci --ignore-scripts --no-audit --no-fund \
  && npm run build
# the manifests the runtime stage installs from: the root's and each workspace's (if any)
RUN mkdir -p /manifests \
  && cp package.json package-lock.json /manifests/ \
  && for m in packages/*/package.json; do [ -f "$m" ] && cp --parents "$m" /manifests/; done; true

FROM ${NODE_IMAGE} AS runtime
# openssl: `baton dev` makes its proxy's self-signed certificate with it (src/dev/certificate.ts)
RUN apt-get update \
  && apt-get install -y --no-install-recommends openssl \
  && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    BATON_DATA_DIR=/var/lib/baton
WORKDIR /app
COPY --from=build /manifests/ ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist ./dist
COPY bin/baton.mjs ./bin/baton.mjs
COPY migrations ./migrations
COPY schemas ./schemas
COPY config ./config
COPY deploy/healthcheck.mjs ./deploy/healthcheck.mjs
RUN mkdir -p /var/lib/baton && chown node:node /var/lib/baton
USER node
VOLUME ["/var/lib/baton"]
# broker HTTP, proxy PostgreSQL
EXPOSE 8080 6432
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "deploy/healthcheck.mjs", "http://127.0.0.1:8080/healthz", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["node", "bin/baton.mjs"]
CMD ["serve", "--config", "/etc/baton/broker.yaml"]
