# rtpengine-rs container image.
#
#   docker build -t rtpengine-rs .                                  # from source (default)
#   docker build --build-arg RTPENGINE_BUILD=prebuilt -t rtpengine-rs .
#       # uses target/release/rtpengine and rtpengine-ctl from the context
#       # (built on the host with `cargo xtask build-ebpf && cargo build
#       # --release -p rtpengine-daemon --bins`; needs glibc >= 2.36, e.g. Debian 12)
#
# Only the stage named by RTPENGINE_BUILD is built: BuildKit (Docker >= 23) and
# podman/buildah skip stages the final image does not use. podman 4.3 / buildah
# 1.28 (Debian 12) ignore this ARG's default when picking stages: pass
# --build-arg RTPENGINE_BUILD=source|prebuilt explicitly there.

ARG RTPENGINE_BUILD=source

# ---- build from source ------------------------------------------------------
FROM rust:1.95.0-bookworm AS source
# The eBPF crate needs a nightly with rust-src (aya-build runs `rustup run nightly`)
# and bpf-linker 0.13 linked against that nightly's LLVM; `cargo xtask build-ebpf`
# installs bpf-linker (and bpftool via apt) itself. The nightly is pinned and
# made the one that `nightly` names.
# The nightly this repository is tested with (manifest date 2026-05-20:
# rustc 1.97.0-nightly e50aa6fba 2026-05-19).
ARG RUST_NIGHTLY=nightly-2026-05-20
RUN set -eux; \
    rustup toolchain install "$RUST_NIGHTLY" --profile minimal --component rust-src; \
    host=$(rustc -vV | sed -n 's/^host: //p'); \
    ln -s "$RUST_NIGHTLY-$host" "$RUSTUP_HOME/toolchains/nightly-$host"; \
    rustup component list --toolchain nightly --installed | grep -q '^rust-src'
WORKDIR /src
COPY . .
RUN set -eux; \
    cargo xtask build-ebpf; \
    cargo build --release --locked -p rtpengine-daemon --bins; \
    install -D -m 0755 target/release/rtpengine /out/rtpengine; \
    install -D -m 0755 target/release/rtpengine-ctl /out/rtpengine-ctl

# ---- or take the binary built on the host -----------------------------------
FROM scratch AS prebuilt
COPY target/release/rtpengine target/release/rtpengine-ctl /out/

FROM ${RTPENGINE_BUILD} AS bin

# ---- runtime -----------------------------------------------------------------
FROM debian:bookworm-slim
# iproute2: address detection in the entrypoint. libssl3: DTLS-SRTP (the
# daemon links OpenSSL). The healthcheck uses bash only.
RUN set -eux; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iproute2 libssl3; \
    rm -rf /var/lib/apt/lists/*
COPY --from=bin /out/rtpengine /out/rtpengine-ctl /usr/local/bin/
COPY --chmod=0755 docker/entrypoint.sh /entrypoint.sh
COPY --chmod=0755 docker/healthcheck.sh /usr/local/bin/rtpengine-healthcheck
# ng control, HTTP (/ping, /metrics, ng over HTTP/WebSocket), media (PORT_MIN..PORT_MAX)
EXPOSE 22222/udp 8080/tcp 23000-32768/udp
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/rtpengine-healthcheck"]
ENTRYPOINT ["/entrypoint.sh"]
CMD ["rtpengine"]
