# syntax=docker/dockerfile:1
# The Covenant operator image: one static binary (x86_64-unknown-linux-musl; kube and reqwest use
# rustls with ring, so there is no OpenSSL to link) on an empty base image.
#
#   docker build -t ghcr.io/covenant-dev/covenant:0.2.0 \
#     --build-arg VERSION=0.2.0 --build-arg REVISION=$(git rev-parse HEAD) .
#
# The final stage holds only /covenant and a CA bundle, runs as 65532:65532 (the chart's
# securityContext: runAsNonRoot, readOnlyRootFilesystem-friendly: it writes no files) and starts
# `covenant run`; the chart passes its own args (run --metrics-addr=0.0.0.0:8080 ...).
# Without a Docker daemon, hack/build-image.sh builds the same final stage with buildah from a
# locally built binary.

ARG RUST_IMAGE=docker.io/library/rust:1-bookworm

FROM ${RUST_IMAGE} AS build
ARG TARGET=x86_64-unknown-linux-musl
# The revision `covenant --version` prints (and the label below carries).
ARG REVISION=unknown
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add "${TARGET}"
WORKDIR /src
COPY . .
# The registry and target caches survive between builds (BuildKit/buildah cache mounts); the binary is
# copied out of the cache mount in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    COVENANT_REVISION="${REVISION}" cargo build --release --locked -p covenant --target "${TARGET}" \
 && cp "target/${TARGET}/release/covenant" /covenant \
 && /covenant --version

FROM scratch
ARG VERSION=0.2.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="covenant" \
      org.opencontainers.image.description="Kubernetes operator that provisions tenants and runs their lifecycle under a platform's service terms" \
      org.opencontainers.image.source="https://github.com/covenant-dev/covenant" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
# CA roots for TLS to endpoints outside the cluster (in-cluster, the API server's CA comes from the
# ServiceAccount mount).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /covenant /covenant
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/covenant"]
CMD ["run"]
