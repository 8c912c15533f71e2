# Rollout-worker image (stateless data plane: prompts -> vLLM -> rewards).
#
#   docker build -f deploy/docker/rollout-worker.Dockerfile -t tandem-rollout-worker:dev .
#
# Not built in this repository's checks (no Docker engine there).
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
RUN corepack enable && corepack prepare pnpm@9.15.9 --activate
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml tsconfig.json tsconfig.base.json ./
COPY packages ./packages
COPY services ./services
COPY proto ./proto
COPY test/package.json ./test/package.json
COPY bench/package.json ./bench/package.json
RUN pnpm install --frozen-lockfile \
 && pnpm exec tsc -b packages/common packages/protocol packages/run-spec packages/rollout-queue services/rollout-worker \
 && pnpm install --frozen-lockfile --prod --filter @tandem/rollout-worker...

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/packages ./packages
COPY --from=build /app/services/rollout-worker ./services/rollout-worker
COPY --from=build /app/package.json ./package.json
USER 1000:1000
ENTRYPOINT ["node", "services/rollout-worker/dist/main.js"]
