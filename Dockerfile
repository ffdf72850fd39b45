# tug's container image. Build: docker build -t tug .
# Run:   docker run -d -p 5000:5000 -v tug-data:/data tug
# Config: the embedded default (/app/config/default.yaml), TUG_* variables for
# single keys, or a mounted file: -v ./tug.yaml:/etc/tug/config.yaml:ro -e TUG_CONFIG=/etc/tug/config.yaml
#
# No container engine runs where tug's tests run, so
# test/deploy/production-install.test.ts carries out these same steps in a
# fresh directory (the npm commands as written here) and starts tug from it.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: all dependencies, compile TypeScript to dist/
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies only, non-root, cache on /data
FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the "prepare" script compiles with tsc, a dev dependency the image leaves out.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund
COPY --from=build /src/dist ./dist
COPY config ./config
RUN mkdir -p /data && chown node:node /data
ENV TUG_DATA_DIR=/data \
    TUG_LISTEN=0.0.0.0:5000 \
    TUG_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 5000
USER node
# The slim image has no curl: node's own fetch probes /healthz on the port TUG_LISTEN names.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.TUG_LISTEN||':5000').split(':').pop()+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["serve"]
