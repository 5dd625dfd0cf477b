# syntax=docker/dockerfile:1
# blip-search: a multi-stage build (docs/operations.md, "Container").
#   build:   all dependencies, the Prisma clients, dist/ (tsc) and web/dist (vite), then prune to
#            production dependencies
#   runtime: Node, the pruned node_modules, dist/, the page, migrations, the schema, the bundled
#            model and samples; nothing else (no compilers, no TypeScript, no tests)
ARG NODE_VERSION=22

FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
# better-sqlite3 and hnswlib-node fall back to a source build when no prebuilt binary fits.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# onnxruntime-node's install script only downloads CUDA binaries (the CPU ones ship in the
# package); npm versions without `allowScripts` (package.json) would run it, this skips it.
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json ./
COPY scripts ./scripts
COPY prisma ./prisma
COPY prisma.config.ts schema.graphql tsconfig.json tsconfig.build.json ./
COPY web ./web
COPY src ./src
# postinstall generates the Prisma clients and builds the page (it needs the sources above).
RUN npm ci
RUN npm run build && npm prune --omit=dev && npm cache clean --force

FROM node:${NODE_VERSION}-bookworm-slim AS runtime
ENV NODE_ENV=production \
    DATA_DIR=/data \
    PORT=4000 \
    HOST=0.0.0.0
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/web/dist ./web/dist
COPY --from=build /app/prisma ./prisma
COPY --from=build /app/schema.graphql ./
COPY models ./models
COPY samples ./samples
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 4000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||4000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# Exec form: node is PID 1 and receives SIGTERM itself (no shell, no npm in between); src/main.ts
# drains requests, hands running jobs back to the queue, saves the index and exits.
STOPSIGNAL SIGTERM
CMD ["node", "--no-memory-reducer", "dist/main.js"]
