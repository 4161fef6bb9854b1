#!/bin/bash
# HEALTHCHECK of the rtpengine-rs image: GET /ping on the HTTP listener
# (expects "pong"), or, with HTTP_PORT=off, an ng ping over UDP
# (d7:command4:pinge -> d6:result4:ponge). Uses bash's /dev/tcp and /dev/udp,
# so the image needs no curl. Addresses come from the file the entrypoint wrote.
set -u
# shellcheck source=/dev/null
. /run/rtpengine/healthcheck.env 2>/dev/null || exit 1
if [ "${HTTP_PORT:-off}" != off ]; then
    exec 3<>"/dev/tcp/$LOCAL_IP/$HTTP_PORT" || exit 1
    printf 'GET /ping HTTP/1.0\r\nHost: %s\r\n\r\n' "$LOCAL_IP" >&3
    timeout 3 cat <&3 | grep -q pong
else
    exec 3<>"/dev/udp/$LOCAL_IP/$NG_PORT" || exit 1
    printf 'hc%s d7:command4:pinge' "$$" >&3
    # dd reads the whole datagram in one read(2); bash's read would take 1 byte.
    timeout 3 dd bs=65536 count=1 <&3 2>/dev/null | grep -q 'd6:result4:ponge'
fi
