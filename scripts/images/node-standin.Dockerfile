# A local stand-in for the official node:<version>-bookworm-slim image, built
# offline by scripts/base-images.sh from a debootstrap minbase root filesystem,
# the pinned Node binary and npm from the npm registry. Only for machines that
# reach no container registry; deploy/Dockerfile is written for the official one.
# The context holds: node (the binary), npm/ (the unpacked npm package),
# and host-ca.crt (the host's CA bundle). The minbase image has the host's apt sources.
FROM xdplb-local/debian:bookworm-minbase
# The official slim image has libatomic1 for node.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libatomic1 \
 && rm -rf /var/lib/apt/lists/*
# The host's CA bundle: HTTPS from a container here (npm ci in docker build) is
# trusted only with it. Node reads it through NODE_EXTRA_CA_CERTS; it is also the
# system bundle, and update-ca-certificates (if a later stage installs
# ca-certificates) keeps it through /usr/local/share/ca-certificates.
COPY host-ca.crt /usr/local/share/ca-certificates/xdplb-host-ca.crt
COPY host-ca.crt /etc/ssl/certs/ca-certificates.crt
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && groupadd --gid 1000 node \
 && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \
 && node --version && npm --version
ARG NODE_VERSION
ARG STANDIN_KEY
ENV NODE_VERSION=${NODE_VERSION} NODE_EXTRA_CA_CERTS=/usr/local/share/ca-certificates/xdplb-host-ca.crt
LABEL dev.xdplb.standin=${STANDIN_KEY}
CMD ["node"]
