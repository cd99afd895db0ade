# Multi-stage build: the host and the shipped plugins, then a small non-root runtime.
FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN rustup target add wasm32-wasip2
COPY . .
RUN cargo build --release --bin strata \
 && ./target/release/strata plugin build plugins \
 && mkdir -p /out/plugins \
 && for d in plugins/bant plugins/xeducation; do \
      mkdir -p /out/plugins/$(basename $d) && cp $d/plugin.toml $d/plugin.wasm /out/plugins/$(basename $d)/; \
    done

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /var/lib/strata --create-home strata
COPY --from=build /src/target/release/strata /usr/local/bin/strata
COPY --from=build /out/plugins /var/lib/strata/plugins
COPY config/strata.toml /etc/strata/strata.toml
USER strata
WORKDIR /var/lib/strata
ENV STRATA_PLUGINS__DIR=/var/lib/strata/plugins \
    STRATA_DATABASE__URL=sqlite:///var/lib/strata/data/strata.db \
    STRATA_RUNTIME__CACHE_DIR=/var/lib/strata/cache \
    STRATA_SERVER__BIND=0.0.0.0:8003
EXPOSE 8003
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8003/health || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["strata", "--config", "/etc/strata/strata.toml", "--log-format", "json"]
CMD ["serve"]
