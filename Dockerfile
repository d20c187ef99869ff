# syntax=docker/dockerfile:1
# mcp-pdp: build the TypeScript, keep only runtime dependencies, run as non-root.
# The compiled default policy (bundle/bundle.tar.gz) is committed, so the
# image needs neither Go nor opa.

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
# HOST=0.0.0.0 is not loopback: the PDP refuses to start without caller
# authentication (PDP_CONFIG with `callers`, see examples/pdp-config.yaml)
# unless PDP_ALLOW_UNAUTHENTICATED_CALLERS=true is set explicitly.
# PDP_PROBE_PORT: /health and /ready on plain HTTP without credentials, so the
# HEALTHCHECK below and Kubernetes probes pass with ops keys and with mTLS on
# (they reveal nothing but up/ready; see README, "Probes").
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8180 \
    PDP_PROBE_PORT=8181
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bundle ./bundle
USER node
EXPOSE 8180 8181
# test/http/probes.test.ts runs this exact command against the real process.
HEALTHCHECK --interval=10s --timeout=2s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PDP_PROBE_PORT||8181)+'/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM: /ready answers 503 for PDP_DRAIN_DELAY_MS (5 s), then in-flight
# requests finish (PDP_SHUTDOWN_TIMEOUT_MS) and the process exits. Give the
# container a stop timeout above both (docker stop -t 20; compose: stop_grace_period).
# SIGHUP reloads PDP_BUNDLE / PDP_DATA (README, "Live policy"); a refused
# candidate keeps the policy that is serving.
STOPSIGNAL SIGTERM
CMD ["node", "dist/main.js", "serve"]
