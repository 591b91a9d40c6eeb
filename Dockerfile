# pg-redis-mirror in a container: `docker build -t pg-redis-mirror .`, then e.g.
#   docker run --rm -e DATABASE_URL=postgres://mirror:...@db:5432/shop -e REDIS_URL=redis://cache:6379 \
#     -p 9187:9187 pg-redis-mirror listen --metrics-port 9187
# The image runs `listen` by default; any other command works the same way (install, sync, status...).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --ignore-scripts
COPY src ./src
COPY sql ./sql
COPY bin ./bin
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/sql ./sql
COPY --from=build /app/bin ./bin
USER node
# SIGTERM finishes the batch in flight and exits 0; give it a few seconds (docker stop -t 30).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=3s CMD node -e "fetch('http://127.0.0.1:' + (process.env.METRICS_PORT || 9187) + '/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
ENTRYPOINT ["node", "bin/pg-redis-mirror.js"]
CMD ["listen", "--metrics-port", "9187"]
