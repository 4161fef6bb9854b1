#!/bin/bash
# The unit's capability test (run by tests/tests/systemd_unit.rs): "the daemon started as an unprivileged user
# with exactly the unit's capabilities opens its kernel table", plus the
# negative cases that make the test meaningful (each capability removed, pin
# directory not prepared). It needs root, iproute2, util-linux (unshare,
# nsenter, setpriv) and a kernel with XDP BPF links (5.9+).
#
# It reads the capability set from the unit file, so the unit and the test
# cannot drift apart. It creates no user (it uses a numeric uid without a
# passwd entry) and leaves the host's bpffs alone (it uses a fresh private
# bpffs instance, mode 0700 like systemd's, in a private mount namespace).
# The network namespace is removed on exit.
#
# usage: unit_caps.sh UNIT BIN
set -u
UNIT=${1:?unit file}
BIN=$(readlink -f "${2:?daemon binary}")
TUID=${TUID:-61234}
NS=rtpe-unitcaps-$$
WORK=$(mktemp -d /tmp/rtpe-unitcaps.XXXXXX)
chmod 755 "$WORK"
# The unit's user must be able to execute the daemon wherever the checkout
# is (a clone under a 0700 directory is not reachable for it): run a copy.
install -m 0755 "$BIN" "$WORK/rtpengine"
BIN=$WORK/rtpengine
fails=0
cleanup() {
  for f in "$WORK"/*.pid; do [ -e "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null; done
  sleep 0.5; ip netns del "$NS" 2>/dev/null; rm -rf "$WORK"
}
trap cleanup EXIT
ok()   { echo "ok   $*"; }
bad()  { echo "FAIL $*"; fails=$((fails+1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

# The unit's set, e.g. "bpf net_admin perfmon".
CAPS=$(sed -n 's/^AmbientCapabilities=//p' "$UNIT" | tr 'A-Z' 'a-z' | sed 's/cap_//g')
BND=$(sed -n 's/^CapabilityBoundingSet=//p' "$UNIT" | tr 'A-Z' 'a-z' | sed 's/cap_//g')
[ -n "$CAPS" ] || { echo "no AmbientCapabilities= in $UNIT"; exit 2; }
check "unit: CapabilityBoundingSet= equals AmbientCapabilities= ($CAPS)" '[ "$CAPS" = "$BND" ]'
check "unit: NoNewPrivileges=yes" 'grep -qx "NoNewPrivileges=yes" "$UNIT"'
check "unit: Type=notify" 'grep -qx "Type=notify" "$UNIT"'
check "unit: no User=root" '! grep -qx "User=root" "$UNIT" && grep -q "^User=" "$UNIT"'

ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add vt0 type veth peer name vt1
ip -n "$NS" addr add 198.18.99.1/24 dev vt0
ip -n "$NS" addr add 198.18.99.2/24 dev vt1
ip -n "$NS" link set vt0 up
ip -n "$NS" link set vt1 up

WRAP=""   # optional command prefix (prlimit) for the whole start
# start NAME "caps" PREP -> the daemon runs in the background. It writes
# $WORK/NAME.log, $WORK/NAME.pid (its pid) and $WORK/NAME.rc (its exit status).
# PREP=unit: what the unit's ExecStartPre=+ lines do; PREP=none: nothing.
start() {
  local name=$1 caps=$2 prep=$3 c=""
  for x in $caps; do c="$c,+$x"; done
  # The daemon runs as TUID, so the log and status files must be its own.
  : >"$WORK/$name.log"; chown "$TUID" "$WORK/$name.log"
  ( $WRAP unshare --mount --propagation private -- sh -c '
      mount -t bpf -o mode=0700 bpf /sys/fs/bpf || exit 99
      if [ "$1" = unit ]; then
        install -d -o "$2" -g "$2" -m 0700 /sys/fs/bpf/rtpengine
        chown -R "$2:$2" /sys/fs/bpf/rtpengine
        chmod o+x /sys/fs/bpf
      fi
      shift 2
      exec "$@"' _ "$prep" "$TUID" \
      nsenter --net=/run/netns/"$NS" -- \
      setpriv --reuid="$TUID" --regid="$TUID" --clear-groups \
        --inh-caps=-all$c --ambient-caps=-all$c --bounding-set=-all$c --no-new-privs -- \
      sh -c 'echo $$ >"$0.pid"; exec "$@"' "$WORK/$name" \
      env NO_COLOR=1 "$BIN" --table=0 --interface=198.18.99.1 --listen-ng=127.0.0.1:2223 \
        --foreground --log-stderr --config-file=none --no-fallback \
        >>"$WORK/$name.log" 2>&1
    echo $? >"$WORK/$name.rc" ) &
  # Ready: the table is open or the daemon has exited (poll up to 10 s).
  for _ in $(seq 100); do
    [ -e "$WORK/$name.rc" ] && return
    grep -q "Startup complete" "$WORK/$name.log" 2>/dev/null && return
    sleep 0.1
  done
}
stop() { kill -TERM "$(cat "$WORK/$1.pid")" 2>/dev/null; for _ in $(seq 100); do [ -e "$WORK/$1.rc" ] && return; sleep 0.1; done; }
log() { cat "$WORK/$1.log"; }

# The pid file is written as TUID: let TUID write in $WORK.
chown "$TUID" "$WORK"

# Positive case, with the NOFILE limits systemd would set (here soft 1024 and
# the container's hard 20000; under systemd both are LimitNOFILE=).
echo "## positive: caps = $CAPS"
# Locked memory (the AF_XDP relay's UMEM): the unit's LimitMEMLOCK=, or the
# hard limit here if lower (a container cannot raise it).
MEMLOCK=$(numfmt --from=iec "$(sed -n 's/^LimitMEMLOCK=//p' "$UNIT")")
HARD=$(ulimit -Hl)
[ "$HARD" = unlimited ] || [ "$MEMLOCK" -le $((HARD * 1024)) ] || MEMLOCK=$((HARD * 1024))
WRAP="prlimit --nofile=1024:20000 --memlock=$MEMLOCK --"; start pos "$CAPS" unit; WRAP=""
P=$(cat "$WORK/pos.pid" 2>/dev/null)
check "table opens"               'log pos | grep -q "kernel forwarding table open table=0"'
check "no fallback line"          '! log pos | grep -q "KERNEL FORWARDING DISABLED"'
check "next hops over rtnetlink"  '! log pos | grep -qE "No rtnetlink socket|Cannot follow neighbour"'
check "AF_XDP relay up"           'log pos | grep -q "AF_XDP relay sockets bound device=vt0" && ! log pos | grep -q "AF_XDP relay unavailable"'
check "still running"             '[ ! -e "$WORK/pos.rc" ] && kill -0 "$P"'
check "uid is $TUID"              'grep -Eq "^Uid:\s+$TUID\s+$TUID\s+$TUID\s+$TUID" /proc/$P/status'
check "NoNewPrivs 1"              'grep -Eq "^NoNewPrivs:\s+1" /proc/$P/status'
eff=$(awk '/^CapEff/{print $2}' /proc/$P/status); amb=$(awk '/^CapAmb/{print $2}' /proc/$P/status); bnd=$(awk '/^CapBnd/{print $2}' /proc/$P/status)
check "CapEff = CapAmb = CapBnd ($eff) and exactly {$CAPS}" \
  '[ "$eff" = "$amb" ] && [ "$eff" = "$bnd" ] && [ "$(capsh --decode=$eff | sed "s/.*=//" | tr , "\n" | sed s/cap_// | sort | tr "\n" " ")" = "$(echo $CAPS | tr " " "\n" | sort | tr "\n" " ")" ]'
check "XDP on vt0, created by uid $TUID" 'ip -n "$NS" -d link show vt0 | grep -q "created_by_uid $TUID"'
check "pins owned by $TUID"       '[ "$(stat -c %u /proc/$P/root/sys/fs/bpf/rtpengine/v3/FLOWS)" = "$TUID" ]'
check "--dump-table reads them"   'nsenter --mount=/proc/$P/ns/mnt "$BIN" --config-file=none --dump-table=0 --bpf-pin-dir=/sys/fs/bpf/rtpengine/v3 | grep -q "kernel table 0: 0 flow(s)"'
nof=$(awk '/^Max open files/{print $4"/"$5}' /proc/$P/limits)
check "soft NOFILE raised to the hard limit ($nof), without CAP_SYS_RESOURCE" '[ "${nof%/*}" = "${nof#*/}" ]'
stop pos
check "SIGTERM: exit 0"           '[ "$(cat "$WORK/pos.rc")" = 0 ]'
check "SIGTERM: XDP released"     'log pos | grep -q "XDP dataplane released on vt0" && ! ip -n "$NS" link show vt0 | grep -q "prog/xdp"'

# Negative cases: each capability removed; pin directory not prepared.
declare -A EXPECT=(
  [bpf]='map error: failed to create map'
  [net_admin]='failed to create map `XSKS`'
  [perfmon]='pointer arithmetic with it prohibited for !root'
)
for drop in $CAPS; do
  rest=$(echo " $CAPS " | sed "s/ $drop / /; s/^ //; s/ $//")
  echo "## without $drop: caps = ${rest:-<none>}"
  start "no-$drop" "$rest" unit
  if [ "$drop" = net_raw ]; then
    # Not needed for the table: only the AF_XDP relay goes.
    check "still running, without the AF_XDP relay" '[ ! -e "$WORK/no-$drop.rc" ] && log no-$drop | grep -qF "AF_XDP relay unavailable (AF_XDP socket on vt0 queue 0: socket(AF_XDP): Operation not permitted"'
    stop "no-$drop"
    continue
  fi
  stop "no-$drop"
  check "exits 1 (--no-fallback)" '[ "$(cat "$WORK/no-$drop.rc")" = 1 ]'
  check "log: ${EXPECT[$drop]:-?}" 'log no-$drop | grep -qF "${EXPECT[$drop]:-@@@}"'
done
echo "## pin directory not prepared (bpffs 0700 root, nothing else)"
start noprep "$CAPS" none
stop noprep
check "exits 1"                   '[ "$(cat "$WORK/noprep.rc")" = 1 ]'
check "log: creating pin directory ... Permission denied" 'log noprep | grep -q "creating pin directory /sys/fs/bpf/rtpengine/v3: Permission denied"'

echo "## $fails failure(s)"
[ "$fails" = 0 ]
