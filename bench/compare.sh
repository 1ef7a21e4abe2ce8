#!/usr/bin/env bash
# floe vs coturn, side by side on loopback, measured by `floe-bench`.
#
#   bench/compare.sh                 # 3 rounds, about 4 minutes
#   bench/compare.sh --duration 10 --rounds 5 --holds "2000x20 500x50" --hold-duration 30
#
# Installs coturn if it is missing (apt-get, as root), builds floe and floe-bench in
# release mode, and for every workload starts a fresh server (floe or coturn, equivalent
# settings, different ports), runs `floe-bench` against it with --pid, and stops it. Servers
# alternate inside each round and the first one alternates between rounds. Prints a
# table of medians over the rounds and the ratios floe/coturn; keeps every JSON
# result in the output directory.
#
# floe runs with --unauth-rate 0: the allocate workload opens thousands of allocations
# from 127.0.0.1, each starting with an unauthenticated Allocate, and the default limit
# (20 error responses a second per source IP, against reflection floods) would throttle
# their 401s. coturn has no such limit. Every other limit stays at its default.
set -euo pipefail

ROUNDS=3
DURATION=2
WARMUP=0.5
RELAY_ALLOCATIONS=50
SIZE=100
ALLOCATE_COUNT=5000
# The scaling run (issue 14): the allocate workload at each of these counts, to show that an
# allocation costs the same (time, memory) whether 1k or 20k are held. Each held allocation
# is a socket in the server and one in the tool, so a count above the open-file limit
# (less room for the rest) is lowered to fit, and the table says so.
SCALE_COUNTS="1000 5000 20000"
# Hold workloads as ALLOCATIONSxRATE: thousands of quiet allocations (issue 14).
HOLDS="2000x20 500x50"
HOLD_DURATION=3
BUILD=1
WORKLOADS="binding relay relay-indications relay-2-threads allocate allocate-scale hold"
OUT=""
FLOE=""
FLOE_ARGS=""
TOOL=""

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    cat <<EOF
options:
  --rounds N              rounds, each running every workload against both ($ROUNDS)
  --duration S            measured seconds of binding and relay runs ($DURATION)
  --warmup S              seconds of load before measuring ($WARMUP)
  --relay-allocations N   allocations of the relay workload ($RELAY_ALLOCATIONS)
  --size B                relay payload bytes ($SIZE)
  --allocate-count N      allocations the allocate workload creates ($ALLOCATE_COUNT)
  --scale-counts "N ..."  allocation counts of the allocate-scale workload ($SCALE_COUNTS)
  --holds "NxR ..."       hold workloads: N allocations each sending R packets/s ($HOLDS);
                          each also runs with no server (floe-bench hold --direct), the
                          tool's own floor at that rate
  --hold-duration S       measured seconds of each hold workload ($HOLD_DURATION)
  --workloads "A B ..."   which of: $WORKLOADS (all)
  --out DIR               where results and server logs go (a new temporary directory)
  --floe PATH             use this floe binary (the server) instead of building one
  --floe-args "ARGS"      more flags for floe serve (e.g. "--rx-coalesce-us 0")
  --tool PATH             use this floe-bench binary (the load tool) instead of building one
  --no-build              use the binaries already built
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --warmup) WARMUP="$2"; shift 2 ;;
        --relay-allocations) RELAY_ALLOCATIONS="$2"; shift 2 ;;
        --size) SIZE="$2"; shift 2 ;;
        --allocate-count) ALLOCATE_COUNT="$2"; shift 2 ;;
        --scale-counts) SCALE_COUNTS="$2"; shift 2 ;;
        --holds) HOLDS="$2"; shift 2 ;;
        --hold-duration) HOLD_DURATION="$2"; shift 2 ;;
        --workloads) WORKLOADS="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --floe) FLOE="$2"; shift 2 ;;
        --floe-args) FLOE_ARGS="$2"; shift 2 ;;
        --tool) TOOL="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "compare.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-$(mktemp -d /tmp/floe-compare.XXXXXX)}"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"

USER_PASS="bob:secret"
REALM="floe"
FLOE_PORT=34790
COTURN_PORT=34780
ECHO_PORT=34770
# Relay ports below the ephemeral range (32768 and up), so the tool's own sockets never
# take them. The servers never run at once, so they share one range, wide enough for the
# largest scaling count.
RELAY_MIN=2000; RELAY_MAX=31999
FLOE_MIN=$RELAY_MIN; FLOE_MAX=$RELAY_MAX
COTURN_MIN=$RELAY_MIN; COTURN_MAX=$RELAY_MAX

log() { echo "compare.sh: $*" >&2; }

# ---- coturn -------------------------------------------------------------------------
if ! command -v turnserver >/dev/null 2>&1; then
    log "coturn is missing; installing it"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq coturn >/dev/null
fi
COTURN_VERSION="$(turnserver --version 2>/dev/null | head -1 || true)"

# ---- floe and floe-bench ------------------------------------------------------------
# The server is floe-actors' `floe`, the load tool the `floe-bench` workspace member.
RELEASE="${CARGO_TARGET_DIR:-$ROOT/target}/release"
PACKAGES=()
if [ -z "$FLOE" ]; then FLOE="$RELEASE/floe"; PACKAGES+=(-p floe-actors); fi
if [ -z "$TOOL" ]; then TOOL="$RELEASE/floe-bench"; PACKAGES+=(-p floe-bench); fi
if [ "$BUILD" -eq 1 ] && [ ${#PACKAGES[@]} -gt 0 ]; then
    log "building ${PACKAGES[*]} (release)"
    (cd "$ROOT" && cargo build --release -q "${PACKAGES[@]}")
fi
[ -x "$FLOE" ] || { log "no floe binary at $FLOE"; exit 1; }
[ -x "$TOOL" ] || { log "no floe-bench binary at $TOOL"; exit 1; }

# Every allocation is a socket in the tool and one in the server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# The most allocations one process may hold here: its open-file limit, less 1000 for the
# listeners, logs and the rest.
FD_ROOM=$(ulimit -n)
if [ "$FD_ROOM" = unlimited ]; then FD_ROOM=1000000; fi
FD_ROOM=$((FD_ROOM - 1000))
SCALED=""
for n in $SCALE_COUNTS; do
    if [ "$n" -gt "$FD_ROOM" ]; then
        log "allocate-scale: $n allocations do not fit the open-file limit ($(ulimit -n)); measuring $FD_ROOM"
        n=$FD_ROOM
    fi
    SCALED="$SCALED $n"
done
SCALE_COUNTS="${SCALED# }"

# ---- servers ------------------------------------------------------------------------
SERVER_PID=""

port_bound() { # PORT: is a UDP socket bound to 127.0.0.1:PORT?
    local hex
    hex=$(printf '0100007F:%04X' "$1")
    grep -q " $hex " /proc/net/udp 2>/dev/null
}

# A server left over from another run would share the port (coturn binds with
# SO_REUSEPORT) and take part of the load: refuse to measure beside it.
port_free() { # PORT
    if port_bound "$1"; then
        log "127.0.0.1:$1 is already bound by another process (a server left running?); stop it first"
        exit 1
    fi
}

wait_bound() { # PORT PID
    for _ in $(seq 1 100); do
        port_bound "$1" && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

start_floe() { # THREADS
    port_free $FLOE_PORT
    "$FLOE" serve --listen "127.0.0.1:$FLOE_PORT" --user "$USER_PASS" --realm "$REALM" \
        --allow-loopback-peers --min-port $FLOE_MIN --max-port $FLOE_MAX \
        --threads "$1" --unauth-rate 0 --log warn $FLOE_ARGS >>"$OUT/floe.log" 2>&1 &
    SERVER_PID=$!
    wait_bound $FLOE_PORT $SERVER_PID || { log "floe did not start; see $OUT/floe.log"; exit 1; }
}

start_coturn() { # THREADS
    port_free $COTURN_PORT
    local dir="$OUT/coturn"
    mkdir -p "$dir"
    rm -f "$dir/turndb" "$dir/turnserver.pid"
    turnserver -n --no-cli --no-tls --no-dtls --listening-ip 127.0.0.1 \
        --listening-port $COTURN_PORT --relay-ip 127.0.0.1 \
        --min-port $COTURN_MIN --max-port $COTURN_MAX \
        --user "$USER_PASS" --realm "$REALM" --lt-cred-mech --allow-loopback-peers \
        --relay-threads "$1" --userdb "$dir/turndb" --pidfile "$dir/turnserver.pid" \
        --log-file "$dir/turnserver.log" --simple-log >>"$OUT/coturn.log" 2>&1 &
    SERVER_PID=$!
    wait_bound $COTURN_PORT $SERVER_PID || { log "coturn did not start; see $OUT/coturn.log"; exit 1; }
}

start_echo() {
    port_free $ECHO_PORT
    "$TOOL" echo-server --listen "127.0.0.1:$ECHO_PORT" --for 600 >>"$OUT/echo.log" 2>&1 &
    SERVER_PID=$!
    wait_bound $ECHO_PORT $SERVER_PID || { log "the echo server did not start"; exit 1; }
}

stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    # SIGINT, not SIGTERM: floe drains on SIGTERM (waits for allocations to end); both
    # floe and coturn stop at once on SIGINT.
    kill -INT "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
trap stop_server EXIT INT TERM

# ---- runs ---------------------------------------------------------------------------
# run ROUND NAME SERVER(floe|coturn|echo) THREADS WORKLOAD ARGS...
run() {
    local round="$1" name="$2" server="$3" threads="$4"
    shift 4
    local port
    local pid=()
    case "$server" in
        floe) start_floe "$threads"; port=$FLOE_PORT ;;
        coturn) start_coturn "$threads"; port=$COTURN_PORT ;;
        echo) start_echo; port=$ECHO_PORT ;;
        none) port=$ECHO_PORT ;; # the tool alone (hold --direct): no server started
    esac
    [ -n "$SERVER_PID" ] && pid=(--pid "$SERVER_PID")
    local line
    if line=$("$TOOL" "$@" --server "127.0.0.1:$port" "${pid[@]}" \
        --warmup "$WARMUP" --json 2>>"$OUT/bench.log"); then
        echo "{\"round\":$round,\"name\":\"$name\",\"target\":\"$server\",\"threads\":$threads,\"result\":$line}" >>"$RESULTS"
        log "round $round  $name  $server: $(field "$line" ops_per_s) $(field "$line" unit)/s"
    else
        log "round $round  $name  $server: FAILED (see $OUT/bench.log)"
    fi
    stop_server
}

field() { # JSON KEY -> the value (numbers and words; null for none)
    sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p" <<<"$1" | head -1
}

wanted() { case " $WORKLOADS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

workloads() { # ROUND SERVER
    local r="$1" s="$2"
    if wanted binding; then
        run "$r" binding "$s" 1 binding --duration "$DURATION"
    fi
    if wanted relay; then
        run "$r" relay "$s" 1 relay --allocations "$RELAY_ALLOCATIONS" --size "$SIZE" \
            --user "$USER_PASS" --duration "$DURATION"
    fi
    if wanted relay-indications; then
        run "$r" relay-indications "$s" 1 relay --indications \
            --allocations "$RELAY_ALLOCATIONS" --size "$SIZE" --user "$USER_PASS" \
            --duration "$DURATION"
    fi
    if wanted relay-2-threads; then
        run "$r" relay-2-threads "$s" 2 relay --allocations "$RELAY_ALLOCATIONS" \
            --size "$SIZE" --user "$USER_PASS" --duration "$DURATION"
    fi
    if wanted allocate; then
        run "$r" allocate "$s" 1 allocate --count "$ALLOCATE_COUNT" --user "$USER_PASS"
    fi
    if wanted allocate-scale; then
        for n in $SCALE_COUNTS; do
            run "$r" "allocate-$n" "$s" 1 allocate --count "$n" --user "$USER_PASS"
        done
    fi
    if wanted hold; then
        for h in $HOLDS; do
            run "$r" "hold-$h" "$s" 1 hold --allocations "${h%x*}" --rate "${h#*x}" \
                --user "$USER_PASS" --duration "$HOLD_DURATION"
        done
    fi
}

START=$(date +%s)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "results in $OUT"
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then order="floe coturn"; else order="coturn floe"; fi
    if wanted binding; then
        run "$r" binding echo 1 binding --duration "$DURATION"
    fi
    if wanted hold; then
        for h in $HOLDS; do
            run "$r" "hold-$h" none 1 hold --direct --allocations "${h%x*}" --rate "${h#*x}" \
                --duration "$HOLD_DURATION"
        done
    fi
    for s in $order; do
        workloads "$r" "$s"
    done
done
ELAPSED=$(( $(date +%s) - START ))
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- table --------------------------------------------------------------------------
# median NAME TARGET KEY: the median over the rounds of KEY, or "-" if never measured.
median() {
    { grep "\"name\":\"$1\",\"target\":\"$2\"" "$RESULTS" || true; } | while read -r l; do
        v=$(field "$l" "$3")
        if [ -n "$v" ] && [ "$v" != null ]; then echo "$v"; fi
    done | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "-"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# spread NAME TARGET KEY: "min / median / max" over the rounds, or "-".
spread() {
    local vals
    vals=$({ grep "\"name\":\"$1\",\"target\":\"$2\"" "$RESULTS" || true; } | while read -r l; do
        v=$(field "$l" "$3")
        if [ -n "$v" ] && [ "$v" != null ]; then echo "$v"; fi
    done | sort -g)
    [ -n "$vals" ] || { echo "-"; return; }
    echo "$(fmt "$(head -1 <<<"$vals")") / $(fmt "$(median "$1" "$2" "$3")") / $(fmt "$(tail -1 <<<"$vals")")"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {
    if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }

fmt() { awk -v v="$1" 'BEGIN {
    if (v == "-") { print "-"; exit }
    a = v < 0 ? -v : v
    if (a >= 100000) printf "%.0f", v; else if (a >= 100) printf "%.0f", v;
    else if (a >= 10) printf "%.1f", v; else if (a >= 1) printf "%.2f", v; else printf "%.3g", v }'; }

row() { # LABEL NAME KEY
    local f c
    f=$(median "$2" floe "$3"); c=$(median "$2" coturn "$3")
    printf '| %s | %s | %s | %s |\n' "$1" "$(fmt "$f")" "$(fmt "$c")" "$(ratio "$f" "$c")"
}

MACHINE="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r)"

{
echo "machine: $MACHINE"
echo "coturn: $COTURN_VERSION; floe: $("$FLOE" --version 2>/dev/null)"
echo "open-file limit: $(ulimit -n) (allocate-scale counts: $SCALE_COUNTS)"
echo "rounds: $ROUNDS, duration ${DURATION}s (hold ${HOLD_DURATION}s each: $HOLDS), warm-up ${WARMUP}s; took ${ELAPSED}s; load average before $LOAD_BEFORE, after $LOAD_AFTER"
echo
echo "| workload and figure (median of $ROUNDS) | floe | coturn | floe/coturn |"
echo "|---|---|---|---|"
row "binding: requests/s" binding ops_per_s
row "binding: requests per server CPU-second" binding ops_per_server_cpu_s
row "binding: RTT p99 (µs)" binding rtt_p99_us
row "binding: tool CPU share" binding tool_cpu_share
row "relay, $RELAY_ALLOCATIONS allocations, channels, ${SIZE} B: relayed packets/s" relay ops_per_s
row "relay, channels: relayed packets per server CPU-second" relay ops_per_server_cpu_s
row "relay, channels: server CPU share" relay server_cpu_share
row "relay, channels: tool CPU share" relay tool_cpu_share
row "relay, channels: loss ratio" relay loss_ratio
row "relay, channels: RTT p50 (µs)" relay rtt_p50_us
row "relay, channels: RTT p99 (µs)" relay rtt_p99_us
row "relay, indications: relayed packets/s" relay-indications ops_per_s
row "relay, indications: relayed packets per server CPU-second" relay-indications ops_per_server_cpu_s
row "relay, 2 server threads: relayed packets/s" relay-2-threads ops_per_s
row "relay, 2 server threads: relayed packets per server CPU-second" relay-2-threads ops_per_server_cpu_s
row "allocate, $ALLOCATE_COUNT: allocations/s" allocate ops_per_s
row "allocate: allocations per server CPU-second" allocate ops_per_server_cpu_s
row "allocate: server memory per held allocation (bytes)" allocate server_bytes_per_allocation
for n in $SCALE_COUNTS; do
    row "allocate $n: allocations/s" "allocate-$n" ops_per_s
    row "allocate $n: allocations per server CPU-second" "allocate-$n" ops_per_server_cpu_s
    row "allocate $n: server memory per held allocation (bytes)" "allocate-$n" server_bytes_per_allocation
done
for h in $HOLDS; do
    row "hold, ${h%x*} allocations x ${h#*x} packets/s, 160 B: server CPU per round trip (µs)" "hold-$h" server_cpu_us_per_round_trip
    row "hold $h: loss ratio" "hold-$h" loss_ratio
    row "hold $h: RTT p99 (µs)" "hold-$h" rtt_p99_us
    row "hold $h: server CPU share" "hold-$h" server_cpu_share
    row "hold $h: tool send lag p99 (µs)" "hold-$h" send_lag_p99_us
    row "hold $h: server memory per allocation (bytes)" "hold-$h" server_bytes_per_allocation
done
echo
for h in $HOLDS; do
    echo "hold $h, the tool alone (no server, hold --direct): loss ratio $(fmt "$(median "hold-$h" none loss_ratio)"), RTT p99 $(fmt "$(median "hold-$h" none rtt_p99_us)") µs, send lag p99 $(fmt "$(median "hold-$h" none send_lag_p99_us)") µs, tool CPU share $(fmt "$(median "hold-$h" none tool_cpu_share)"), pacing skipped $(fmt "$(median "hold-$h" none pacing_skipped)")"
done
if wanted allocate; then
    echo "allocate, $ALLOCATE_COUNT: allocations/s over $ROUNDS rounds, min / median / max: floe $(spread allocate floe ops_per_s), coturn $(spread allocate coturn ops_per_s)"
fi
e=$(median binding echo ops_per_s); f=$(median binding floe ops_per_s)
echo "bare UDP echo (floe-bench echo-server), same tool: $(fmt "$e") requests/s, $(fmt "$(median binding echo ops_per_server_cpu_s)") per server CPU-second; floe binding / echo: $(ratio "$f" "$e")"
f1=$(median relay floe ops_per_s); f2=$(median relay-2-threads floe ops_per_s)
echo "floe relay scaling, 2 threads / 1 thread: $(ratio "$f2" "$f1") (tool CPU share with 2 threads: $(fmt "$(median relay-2-threads floe tool_cpu_share)"))"
n=$(wc -l <"$RESULTS")
tb=$(grep -c '"bottleneck":"tool"' "$RESULTS" || true)
mb=$(grep -c '"bottleneck":"machine"' "$RESULTS" || true)
sb=$(grep -c '"bottleneck":"server"' "$RESULTS" || true)
echo "bottleneck of the $n runs: the tool (>= 90% of a core) $tb, the server (>= 90% of a core) $sb, the machine (every core busy, other processes included) $mb"
echo "median CPU share of other processes on the machine during the runs: $(fmt "$(for t in floe coturn echo; do grep "\"target\":\"$t\"" "$RESULTS" || true; done | while read -r l; do v=$(field "$l" other_processes_cpu_share); if [ -n "$v" ] && [ "$v" != null ]; then echo "$v"; fi; done | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print v[int((NR + 1) / 2)] }')") cores"
} | tee "$OUT/table.md"
