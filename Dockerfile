# syntax=docker/dockerfile:1

# Build: compile the TypeScript with the full (dev) dependency tree.
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY schemas ./schemas
COPY src ./src
# The kernel's wasm is committed (wasm/kernels.json records what it was built from); the build
# checks that record against the sources and compiles only if they differ.
COPY scripts ./scripts
COPY wasm ./wasm
RUN npm run build

# Runtime: production dependencies and the compiled service only, as an unprivileged user.
FROM node:22-bookworm-slim AS runtime
# tini as PID 1: signals reach Node (SIGTERM starts the graceful shutdown), and zombies are reaped.
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
USER node
ENV PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/src/server.js"]
