# mqtt-amqp-bridge container image.
# test/unit/container.test.ts keeps this file in step with package.json, config/bridge.yaml and compose.yaml.
#
#   docker build -t mqtt-amqp-bridge .
#   docker run --rm -p 1883:1883 -p 8083:8083 -e AMQP_URL=amqp://guest:guest@rabbitmq-host:5672 mqtt-amqp-bridge
#
# Debian (glibc) rather than Alpine: the TypeScript 7 native compiler used by the build ships one
# prebuilt binary per platform, and bookworm is what every one of them is built for.

# ---- build: all dependencies, compile src/ to dist/ ----
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies, compiled code, configuration ----
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY config ./config
# The files stay owned by root: the bridge only reads them. It writes only under /app/data
# (e.g. `mqtt.sessionFile: /app/data/sessions.json`), a volume so that it outlives the container.
RUN mkdir /app/data && chown node:node /app/data
VOLUME /app/data
USER node
# MQTT over TCP (MQTT_PORT) and over WebSocket on /mqtt (MQTT_WS_PORT): the listeners of config/bridge.yaml;
# 9102: /metrics, /healthz and /readyz (config key http.port).
EXPOSE 1883 8083 9102
# Healthy while /readyz answers 200: every listener up and RabbitMQ connected.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9102/readyz').then((r)=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# The bridge handles SIGTERM itself (graceful stop within shutdownTimeoutMs), so node can be PID 1.
# --max-semi-space-size: see src/cli/node-flags.ts.
ENTRYPOINT ["node", "--max-semi-space-size=64", "dist/cli/bin.js"]
CMD ["run", "--config", "config/bridge.yaml"]
