# SpecialSnowflake: multi-stage build, small Debian runtime with the tools flake scripts use.
# Credentials are never part of the image: pass them at run time (environment, a read-only
# ~/.aws mount, an IAM role) and mount creds.json read-only at /app/creds.json if you use one.
#
# The base images are build arguments so a mirror or a locally built base can stand in
# (`--build-arg RUNTIME_IMAGE=registry.example.com/debian:bookworm-slim`). The test suite builds
# the `runtime` stage below unchanged on a Debian base made with mmdebstrap and puts the binary it
# already built in place of the `build` stage (tests/container.rs, docs/operations.md).
ARG BUILD_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
# The line tables of the release profile are most of the binary (132 MB, 28 MB without them):
# they move to snowflake.debug, which stays in this stage (`--target build`, then copy it out) and
# which gdb and addr2line find through the debug link, for a backtrace from production.
RUN cargo build --release --locked --bin snowflake \
    && objcopy --only-keep-debug --compress-debug-sections=zlib target/release/snowflake target/release/snowflake.debug \
    && objcopy --strip-debug --add-gnu-debuglink=target/release/snowflake.debug target/release/snowflake

FROM ${RUNTIME_IMAGE} AS runtime
# sh and bash, curl and jq for flake scripts, procps for pgrep, tini as PID 1 (reaps zombies,
# forwards signals), CA certificates for HTTPS to AWS.
RUN apt-get update \
    && apt-get install -y --no-install-recommends bash curl jq procps tini ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 snowflake \
    && useradd --system --uid 10001 --gid snowflake --create-home --home-dir /home/snowflake snowflake \
    && install -d -o snowflake -g snowflake /var/lib/snowflake /var/log/snowflake
COPY --from=build /src/target/release/snowflake /usr/local/bin/snowflake
WORKDIR /app
COPY flakes ./flakes
COPY res ./res
ENV SNOWFLAKE_FLAKES=/app/flakes \
    SNOWFLAKE_WORKDIR=/app \
    SNOWFLAKE_CREDS=/app/creds.json \
    SNOWFLAKE_STATE_DIR=/var/lib/snowflake \
    SNOWFLAKE_LOG_DIR=/var/log/snowflake \
    SNOWFLAKE_LISTEN=0.0.0.0:9731 \
    SNOWFLAKE_TIMEZONE=UTC \
    TZ=UTC
VOLUME ["/var/lib/snowflake", "/var/log/snowflake"]
USER snowflake
EXPOSE 9731
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:9731/healthz || exit 1
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["snowflake", "run"]
