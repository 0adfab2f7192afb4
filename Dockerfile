# syntax=docker/dockerfile:1
#
# Both Bootes binaries, each in a small non-root runtime image:
#
#   docker build --target controller -t bootes-controller .
#   docker build --target xds-server -t bootes-xds-server .
#   docker build --target setup -t bootes-setup .
#
# `setup` runs the one-shot jobs of an install: manifests/etcd/roles.sh (the
# etcd users and roles; the roles Job of manifests/etcd/) and, for
# docker-compose.yml, deploy/compose/make-certs.sh. docker-compose.yml
# builds all three. The builder's Rust must be at least the
# newest rust-version in Cargo.lock (kube 5 needs 1.89; tests/tests/compose.rs
# checks it against the workspace's rust-version).

FROM rust:1.89-bookworm AS build
# protoc for crates that run it at build time (our own .proto is compiled by
# protox and needs none).
RUN apt-get update \
    && apt-get install -y --no-install-recommends protobuf-compiler \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p bootes-controller -p bootes-xds-server --bins \
    && mkdir -p /out \
    && cp target/release/bootes-controller target/release/bootes-xds-server /out/

# glibc and libgcc only, no shell; runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot AS controller
COPY --from=build /out/bootes-controller /usr/local/bin/bootes-controller
USER nonroot:nonroot
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/bootes-controller"]
CMD ["--help"]

FROM gcr.io/distroless/cc-debian12:nonroot AS xds-server
COPY --from=build /out/bootes-xds-server /usr/local/bin/bootes-xds-server
USER nonroot:nonroot
EXPOSE 18000 19000
ENTRYPOINT ["/usr/local/bin/bootes-xds-server"]

# bash, etcdctl (from the etcd release image, which has no shell) and
# openssl, for the setup scripts; runs as uid 65532.
FROM quay.io/coreos/etcd:v3.5.17 AS etcd
FROM debian:bookworm-slim AS setup
RUN apt-get update \
    && apt-get install -y --no-install-recommends openssl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=etcd /usr/local/bin/etcdctl /usr/local/bin/etcdctl
COPY manifests/etcd/roles.sh deploy/compose/make-certs.sh /usr/local/share/bootes/
USER 65532:65532
ENTRYPOINT ["bash"]
