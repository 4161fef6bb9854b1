# rtpengine-rs in a container.
#
#   docker build -t rtpengine-rs .
#   docker run --rm --network host --privileged -v /sys/fs/bpf:/sys/fs/bpf \
#       rtpengine-rs --table=0 --interface=eth0 --listen-ng=127.0.0.1:2223
#
# Host networking: media needs thousands of UDP ports and XDP attaches to the
# host's devices. --privileged (or CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN,
# CAP_PERFMON) lets the daemon load the eBPF program; mounting the host's
# bpffs keeps the pinned forwarding maps visible to `bpftool` on the host and
# across container restarts. Without privileges the daemon logs
# "KERNEL FORWARDING DISABLED" and relays in userspace.

FROM debian:bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl build-essential git \
    && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:$PATH
RUN curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain 1.95.0 \
    && rustup toolchain install nightly --profile minimal --component rust-src
WORKDIR /src
COPY . .
# xtask installs bpf-linker (built against the nightly's LLVM) and the other
# build prerequisites, then builds the eBPF object; the daemon embeds it.
RUN cargo xtask build-ebpf && cargo build --release -p rtpengine-daemon --bin rtpengine

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends iproute2 bpftool \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/rtpengine /usr/bin/rtpengine
ENTRYPOINT ["/usr/bin/rtpengine", "--foreground", "--log-stderr", "--config-file=none"]
