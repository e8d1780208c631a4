# webcare: multi-stage build, slim non-root runtime.
#
#   docker build -t webcare .
#   docker run -p 8080:8080 -v webcare-data:/data webcare
#
# Configuration comes from the environment (WEBCARE_SECTION__KEY, see config/webcare.example.toml) or from a file
# mounted at /etc/webcare/webcare.toml and named by WEBCARE_CONFIG. The SQLite database lives on the /data volume.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Manifests first, so that dependencies are cached in their own layer while only webcare's code changes.
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY app ./app
COPY bots ./bots
COPY bridge ./bridge
COPY config ./config
COPY domain ./domain
COPY storage ./storage
COPY ticketing ./ticketing
COPY tests ./tests
COPY vendor ./vendor
COPY web ./web
COPY webcare ./webcare
COPY webhook ./webhook
RUN cargo build --release --locked --bin webcare \
    && cp target/release/webcare /usr/local/bin/webcare

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin webcare \
    && mkdir -p /data /etc/webcare \
    && chown webcare:webcare /data
COPY --from=build /usr/local/bin/webcare /usr/local/bin/webcare
COPY config/webcare.example.toml /etc/webcare/webcare.example.toml
USER webcare
WORKDIR /data
VOLUME ["/data"]
ENV WEBCARE_DATABASE__URL=sqlite:///data/webcare.db \
    WEBCARE_HTTP__LISTEN=0.0.0.0:8080 \
    WEBCARE_LOG__FORMAT=json
EXPOSE 8080
# webcare stops on SIGTERM (docker stop) within shutdown.grace_secs.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["webcare"]
CMD ["serve"]
