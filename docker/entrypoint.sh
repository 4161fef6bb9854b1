#!/bin/sh
# Entrypoint of the rtpengine-rs image (same conventions as the upstream,
# drachtio and jambonz rtpengine images):
#
#   IMAGE                      -> rtpengine with the options built below
#   IMAGE rtpengine [OPTS...]  -> the same, OPTS appended (a repeated scalar
#                                 option overrides ours: the last one wins)
#   IMAGE CMD [ARGS...]        -> exec CMD ARGS as given (e.g. bash)
#
# Environment (empty = default):
#   LOCAL_IP    address to bind media/ng/HTTP on; default: the container's own
#               IPv4 address (source address of its default route)
#   PUBLIC_IP   address to advertise in SDP (--interface=LOCAL!PUBLIC)
#   INTERFACES  full override: space-separated --interface values,
#               e.g. "private/10.0.0.5 public/10.0.0.5!203.0.113.7"
#   NG_PORT     ng control port on LOCAL_IP                     (22222)
#   HTTP_PORT   HTTP (/ping, /metrics, ng over HTTP/WS) on LOCAL_IP (8080; "off" = none)
#   CLI_PORT    rtpengine-ctl CLI on 127.0.0.1                  (9900; "off" = none)
#   PORT_MIN / PORT_MAX   media port range                      (23000 / 32768)
#   LOG_LEVEL   0..7                                            (6)
#   TABLE       kernel (eBPF/XDP) forwarding table, -1 = off    (-1)
# jambonz/rtpengine's names are accepted too: RTP_START_PORT, RTP_END_PORT, LOGLEVEL.
set -eu

if [ "${1:-}" != rtpengine ]; then
    exec "$@"
fi
shift
# Informational runs need no address: IMAGE rtpengine --version
case " $* " in
    *" --version "* | *" -v "* | *" --help "* | *" -h "*) exec rtpengine "$@" ;;
esac

die() { echo "entrypoint: $*" >&2; exit 64; }

# The container's own IPv4 address. "ip route get" asks the kernel which source
# address it would use for an outside destination (TEST-NET-2, never routed, so it
# follows the default route; no packet is sent). It is robust against interface
# naming, several interfaces and secondary addresses. Without a default route
# (e.g. an internal network or a bare namespace), fall back to the first
# global-scope IPv4 address of any interface that is up.
detect_local_ip() {
    ip -4 -o route get 198.51.100.1 2>/dev/null \
        | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n 1 | grep . && return 0
    ip -4 -o addr show scope global up 2>/dev/null \
        | sed -n 's/.* inet \([0-9.]*\)\/.*/\1/p' | head -n 1 | grep . && return 0
    return 1
}

LOCAL_IP=${LOCAL_IP:-}
if [ -z "$LOCAL_IP" ]; then
    LOCAL_IP=$(detect_local_ip) || die "cannot find this container's IPv4 address; set LOCAL_IP"
fi
PUBLIC_IP=${PUBLIC_IP:-}
NG_PORT=${NG_PORT:-22222}
HTTP_PORT=${HTTP_PORT:-8080}
CLI_PORT=${CLI_PORT:-9900}
PORT_MIN=${PORT_MIN:-${RTP_START_PORT:-23000}}
PORT_MAX=${PORT_MAX:-${RTP_END_PORT:-32768}}
LOG_LEVEL=${LOG_LEVEL:-${LOGLEVEL:-6}}
TABLE=${TABLE:--1}

set -- --foreground --log-stderr --config-file=none \
    --listen-ng="$LOCAL_IP:$NG_PORT" \
    --port-min="$PORT_MIN" --port-max="$PORT_MAX" \
    --log-level="$LOG_LEVEL" --table="$TABLE" \
    "$@"
if [ "$CLI_PORT" != off ]; then set -- --listen-cli="127.0.0.1:$CLI_PORT" "$@"; fi
if [ "$HTTP_PORT" != off ]; then set -- --listen-http="$LOCAL_IP:$HTTP_PORT" "$@"; fi
if [ -n "${INTERFACES:-}" ]; then
    set -f  # no globbing of the specs
    ifs=
    for i in $INTERFACES; do ifs="$ifs --interface=$i"; done
    # shellcheck disable=SC2086 # one word per interface, by design
    set -- $ifs "$@"
elif [ -n "$PUBLIC_IP" ]; then
    set -- --interface="$LOCAL_IP!$PUBLIC_IP" "$@"
else
    set -- --interface="$LOCAL_IP" "$@"
fi

# For the HEALTHCHECK (it runs in a fresh exec, without this script's variables).
{ mkdir -p /run/rtpengine &&
  printf 'LOCAL_IP=%s\nNG_PORT=%s\nHTTP_PORT=%s\n' "$LOCAL_IP" "$NG_PORT" "$HTTP_PORT" \
    > /run/rtpengine/healthcheck.env; } 2>/dev/null || true

echo "entrypoint: exec rtpengine $*" >&2
exec rtpengine "$@"
