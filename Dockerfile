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
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8180
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bundle ./bundle
USER node
EXPOSE 8180
HEALTHCHECK --interval=10s --timeout=2s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8180)+'/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM drains in-flight requests (PDP_SHUTDOWN_TIMEOUT_MS) before exiting.
STOPSIGNAL SIGTERM
CMD ["node", "dist/main.js"]
