# Control-plane image; it also holds services/simulator, which the
# kubernetes runtime runs as generators and trainer of simulated runs.
#
#   docker build -f deploy/docker/control-plane.Dockerfile -t tandem-control-plane:dev .
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
 && pnpm exec tsc -b packages/common packages/protocol packages/run-spec packages/rollout-queue services/control-plane services/simulator \
 && pnpm install --frozen-lockfile --prod --filter @tandem/control-plane... --filter @tandem/simulator...

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app /app
# The node image's `node` user is uid/gid 1000: the pods' runAsUser.
USER 1000:1000
EXPOSE 8080 50051
ENTRYPOINT ["node"]
CMD ["services/control-plane/dist/main.js"]
