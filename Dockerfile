# syntax=docker/dockerfile:1

# The switchyard controller image: the release binary on distroless (no shell, no package
# manager, no curl), running as a non-root user.
#
#   docker build -t switchyard .
#   docker run --rm -p 8080:8080 -e AWS_REGION=us-east-1 -e SWITCHYARD_TABLE=... switchyard
#
# The Rust version is Cargo.toml's rust-version; bump both together. Pin the base images by
# digest (@sha256:...) in your registry mirror for reproducible builds.
ARG RUST_VERSION=1.94
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM rust:${RUST_VERSION}-slim-bookworm AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /build

# Dependencies first, against stub sources: this layer is rebuilt only when Cargo.toml or
# Cargo.lock change, not on every source change. Cargo refuses a manifest whose declared
# targets (tests, benches) have no file, so each gets a stub. The workspace's other member,
# the simulation harness (a dev-dependency, never part of the binary), needs its manifest
# and an empty library.
COPY Cargo.toml Cargo.lock ./
COPY simulation/Cargo.toml ./simulation/
COPY deploy/docker/target-stubs.awk /usr/local/share/switchyard/
RUN mkdir -p src simulation/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch simulation/src/lib.rs \
    && awk -f /usr/local/share/switchyard/target-stubs.awk Cargo.toml | while read -r stub; do \
         mkdir -p "$(dirname "$stub")" && echo 'fn main() {}' > "$stub"; \
       done \
    && cargo build --release --locked --bin switchyard

# The crate itself. Touching the roots makes cargo rebuild it even when the copied files are
# older than the stub build.
COPY src ./src
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin switchyard \
    && install -D -m 0755 target/release/switchyard /out/switchyard

# Debian 12 with glibc and libgcc (what the binary links), CA certificates and tzdata; the
# :nonroot tag runs as uid/gid 65532.
FROM ${RUNTIME_IMAGE}

LABEL org.opencontainers.image.title="switchyard" \
      org.opencontainers.image.description="A reconciling release controller for blue/green and canary releases of Amazon ECS services" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=build /out/switchyard /usr/local/bin/switchyard
COPY config/controller.yaml /etc/switchyard/controller.yaml

# Inside a container the network namespace is the boundary: listen on every interface so
# that metrics can be scraped (the file's default is loopback only). SWITCHYARD_* variables
# override the file key by key.
ENV SWITCHYARD_LISTEN=0.0.0.0:8080

USER 65532:65532
EXPOSE 8080

# The binary checks its own /healthz (there is no shell or curl in this image).
HEALTHCHECK --interval=15s --timeout=5s --start-period=15s --retries=3 \
    CMD ["switchyard", "healthcheck"]

ENTRYPOINT ["switchyard"]
CMD ["run", "--config", "/etc/switchyard/controller.yaml"]
