#!/usr/bin/env bash
# bench/compare.sh -- hostinfod side by side with the fork-per-client floor
# (bench/floor/floor.c), tcpserver (ucspi-tcp) and xinetd, on loopback.
#
# Usage: bench/compare.sh            (from anywhere inside a clone)
#
# Environment (all optional):
#   BENCH_SECS=3          seconds measured per cell (after a 0.3 s warm-up)
#   BENCH_CONC="1 8 64"   concurrency levels
#   BENCH_REPS=3          runs of each cell per server (in rotation; median kept)
#   BENCH_IDLE="0 100 1000"  idle sessions held open for the idle test
#   BENCH_RELOADS=100     SIGHUPs sent under load
#   BENCH_NO_BUILD=1      do not run cargo/cc (use existing binaries)
#   BENCH_NO_INSTALL=1    never apt-get install the peers
#   BENCH_STRACE=1        also count syscalls per session (strace -c -f)
#   BENCH_NO_STATIC_FLOOR=1  skip floor-static (the floor linked -static-pie)
#   BENCH_NO_SCALE=1      skip the scale tables (bench/scale.sh, run at the end
#                         with its own BENCH_SCALE_*/BENCH_MEM_IDLE/BENCH_CMDS)
#   HOSTINFOD=PATH        the hostinfod binary (default: TARGET_DIR/HOST/release/hostinfod,
#                         HOST the host tuple: .cargo/config.toml builds for it)
#   CARGO_TARGET_DIR      honoured for the build and for finding the binaries
#
# Everything listens on 127.0.0.1 or on Unix sockets in a private temp dir.
# Only processes this script started are signalled, by PID; every loop is
# bounded in count and time.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=${BENCH_SECS:-3}
WARMUP=${BENCH_WARMUP:-0.3}
CONCS=${BENCH_CONC:-"1 8 64"}
REPS=${BENCH_REPS:-3}
IDLES=${BENCH_IDLE:-"0 100 1000"}
RELOADS=${BENCH_RELOADS:-100}
RELOAD_PROBES=20

say() { printf '%s\n' "$*"; }
note() { printf '# %s\n' "$*" >&2; }
die() { printf 'compare.sh: %s\n' "$*" >&2; exit 1; }

TMP=$(mktemp -d /tmp/hostinfod-bench.XXXXXX) || die "mktemp failed"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# ---------------------------------------------------------------- machine
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
say "# hostinfod benchmark"
say
say "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
say "- machine: $(nproc) CPUs, ${CPU:-unknown CPU}, kernel $(uname -r), $(awk '/^MemTotal:/{printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM"
envs=""
for v in BENCH_SECS BENCH_WARMUP BENCH_CONC BENCH_REPS BENCH_IDLE BENCH_RELOADS BENCH_STRACE; do
	[[ -n ${!v:-} ]] && envs+="$v=\"${!v}\" "
done
say "- command: \`${envs}bench/compare.sh\`"
LOAD_START=$(cat /proc/loadavg)
say "- load average at start: $(cut -d' ' -f1-3 <<<"$LOAD_START")"
say "- open files limit: $(ulimit -n); cell: ${SECS} s measured after ${WARMUP} s warm-up"
say "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || echo ' (working tree modified)')"

# ---------------------------------------------------------------- peers
need_pkgs=()
command -v tcpserver >/dev/null || need_pkgs+=(ucspi-tcp)
command -v xinetd >/dev/null || [[ -x /usr/sbin/xinetd ]] || need_pkgs+=(xinetd)
if ((${#need_pkgs[@]})) && [[ -z ${BENCH_NO_INSTALL:-} ]] && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
	note "installing ${need_pkgs[*]}"
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}"; } >"$TMP/apt.log" 2>&1 ||
		note "apt-get failed (see below); peers may be missing: $(tail -n 3 "$TMP/apt.log")"
fi
TCPSERVER=$(command -v tcpserver || true)
XINETD=$(command -v xinetd || { [[ -x /usr/sbin/xinetd ]] && echo /usr/sbin/xinetd; } || true)

# ---------------------------------------------------------------- build
TARGET_DIR=${CARGO_TARGET_DIR:-}
if [[ -z $TARGET_DIR ]]; then
	TARGET_DIR=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
		grep -o '"target_directory":"[^"]*"' | head -n 1 | cut -d'"' -f4)
	[[ -n $TARGET_DIR ]] || TARGET_DIR=$ROOT/target
fi
FLOOR=$TMP/floor
HOSTINFOD_NOTE=""
if [[ -z ${BENCH_NO_BUILD:-} ]]; then
	note "building hostinfod-bench"
	(cd "$ROOT" && cargo build --release --quiet -p hostinfod-bench) || die "cannot build hostinfod-bench"
	note "building hostinfod"
	if ! (cd "$ROOT" && cargo build --release --quiet -p hostinfod) 2>"$TMP/build.log"; then
		HOSTINFOD_NOTE="hostinfod did not build: $(grep -m1 '^error' "$TMP/build.log")"
		note "$HOSTINFOD_NOTE"
	fi
fi
# .cargo/config.toml builds for the host tuple (static-pie on glibc), so the
# binaries are in TARGET_DIR/<host tuple>/release.
HOST_TUPLE=$(rustc --print host-tuple 2>/dev/null || rustc -vV 2>/dev/null | sed -n 's/^host: //p')
OUT_DIR=$TARGET_DIR/$HOST_TUPLE/release
[[ -n $HOST_TUPLE && -d $OUT_DIR ]] || OUT_DIR=$TARGET_DIR/release
BENCH=$OUT_DIR/hostinfod-bench
HOSTINFOD=${HOSTINFOD:-$OUT_DIR/hostinfod}
# How a binary is linked, for the table's notes: the fork cost depends on it.
linkage() {
	local out
	out=$(LC_ALL=C ldd "$1" 2>&1)
	case $out in
	*"statically linked"* | *"not a dynamic executable"*) echo "is linked statically" ;;
	*) echo "is linked dynamically ($(grep -c '=>' <<<"$out") shared libraries)" ;;
	esac
}
[[ -x $BENCH ]] || die "no $BENCH (build it: cargo build --release -p hostinfod-bench)"
cc -O2 -o "$FLOOR" "$ROOT/bench/floor/floor.c" || die "cannot build the floor (cc -O2 bench/floor/floor.c)"
# The same floor linked the way hostinfod is (statically, as a PIE), so the
# table also shows how much of the difference is the linking.
FLOOR_STATIC=""
if [[ -z ${BENCH_NO_STATIC_FLOOR:-} ]] && cc -O2 -static-pie -o "$TMP/floor-static" "$ROOT/bench/floor/floor.c" 2>/dev/null; then
	FLOOR_STATIC=$TMP/floor-static
fi

# ---------------------------------------------------------------- ports
mapfile -t PORTS < <("$BENCH" free-port -n 6)
((${#PORTS[@]} == 6)) || die "cannot find free ports"
P_H=${PORTS[0]} P_F=${PORTS[1]} P_T=${PORTS[2]} P_X=${PORTS[3]} P_I=${PORTS[4]} P_S=${PORTS[5]}
T_H="--tcp 127.0.0.1:$P_H"
U_H="--unix $TMP/hostinfod.sock"
T_F="--tcp 127.0.0.1:$P_F"
U_F="--unix $TMP/floor.sock"
T_S="--tcp 127.0.0.1:$P_S"
U_S="--unix $TMP/floor-static.sock"
T_T="--tcp 127.0.0.1:$P_T"
T_X="--tcp 127.0.0.1:$P_X"

# Wait until TARGET greets (bounded).
ready() { "$BENCH" probe $1 --expect "Welcome" --max-wait "${2:-5}" >/dev/null 2>&1; }

# ---------------------------------------------------------------- servers
# hostinfod config: $1 = log level, $2 = greeting suffix, $3 = tcp port,
# $4 = file name stem, $5 = "default" to keep the default [limits]
write_conf() {
	local tmpf="$TMP/$4.toml.new" l1='max_children = 4096' l2='max_per_source = 4096'
	[[ ${5:-} == default ]] && l1='# max_children: default' l2='# max_per_source: default'
	printf '%s\n' \
		'# written by bench/compare.sh' \
		'[listen]' \
		"tcp = [\"127.0.0.1:$3\"]" \
		"unix = [\"$TMP/$4.sock\"]" \
		'' \
		'[daemon]' \
		"pid_file = \"$TMP/$4.pid\"" \
		'' \
		'[limits]' \
		"$l1" "$l2" \
		'' \
		'[protocol]' \
		"greeting = \"Welcome to hostinfod on {hostname}; $2\"" \
		'' \
		'[log]' \
		'destination = "stderr"' \
		"level = \"$1\"" >"$tmpf"
	mv -f "$tmpf" "$TMP/$4.toml"
}

HPID=""
start_hostinfod() { # $1 = stem, $2 = port
	HPID=""
	[[ -x $HOSTINFOD ]] || return 1
	if ! "$HOSTINFOD" -t -c "$TMP/$1.toml" >"$TMP/$1.check" 2>&1; then
		HOSTINFOD_NOTE="hostinfod -t rejected the config: $(head -n 1 "$TMP/$1.check")"
		return 1
	fi
	"$HOSTINFOD" -f -c "$TMP/$1.toml" >>"$TMP/$1.log" 2>&1 &
	HPID=$!
	STARTED+=("$HPID")
	if ! ready "--tcp 127.0.0.1:$2" 10 || ! ready "--unix $TMP/$1.sock" 5; then
		HOSTINFOD_NOTE="hostinfod did not serve: $(tail -n 2 "$TMP/$1.log" | tr '\n' ' ')"
		stop_pid "$HPID"
		HPID=""
		return 1
	fi
}

write_conf warn "type help for command list." "$P_H" hostinfod
if [[ -x $HOSTINFOD ]]; then
	start_hostinfod hostinfod "$P_H" || note "$HOSTINFOD_NOTE"
else
	[[ -n $HOSTINFOD_NOTE ]] || HOSTINFOD_NOTE="no $HOSTINFOD"
fi

# start_floor BINARY PORT SOCKET: the floor on TCP and on Unix (two
# processes); sets FL_T and FL_U to their PIDs, or returns 1 when either
# does not greet (then both are stopped).
start_floor() {
	FL_T="" FL_U=""
	"$1" -p "$2" &
	FL_T=$!
	STARTED+=("$FL_T")
	"$1" -u "$3" &
	FL_U=$!
	STARTED+=("$FL_U")
	ready "--tcp 127.0.0.1:$2" && ready "--unix $3" && return 0
	stop_pid "$FL_T"
	stop_pid "$FL_U"
	FL_T="" FL_U=""
	return 1
}
start_floor "$FLOOR" "$P_F" "$TMP/floor.sock" || die "the floor does not serve"
FPID=$FL_T FUPID=$FL_U
SPID="" SUPID=""
if [[ -n $FLOOR_STATIC ]]; then
	start_floor "$FLOOR_STATIC" "$P_S" "$TMP/floor-static.sock" || note "floor-static does not serve"
	SPID=$FL_T SUPID=$FL_U
fi

TPID="" XPID=""
if [[ -n $TCPSERVER ]]; then
	# -H -R -l: no DNS or ident lookups; -c: no concurrency cap below 64.
	"$TCPSERVER" -q -H -R -l localhost -c 2000 -b 128 127.0.0.1 "$P_T" "$FLOOR" -i &
	TPID=$!
	STARTED+=("$TPID")
	ready "$T_T" || { note "tcpserver does not serve"; stop_pid "$TPID"; TPID=""; }
fi
if [[ -n $XINETD ]]; then
	cat >"$TMP/xinetd.conf" <<EOF
defaults
{
}
service hostinfod-bench
{
	type        = UNLISTED
	id          = hostinfod-bench
	socket_type = stream
	protocol    = tcp
	wait        = no
	user        = root
	bind        = 127.0.0.1
	port        = $P_X
	server      = $FLOOR
	server_args = -i
	instances   = UNLIMITED
	per_source  = UNLIMITED
	cps         = 1000000 1
}
EOF
	"$XINETD" -dontfork -f "$TMP/xinetd.conf" >"$TMP/xinetd.log" 2>&1 &
	XPID=$!
	STARTED+=("$XPID")
	ready "$T_X" || { note "xinetd does not serve: $(tail -n 2 "$TMP/xinetd.log")"; stop_pid "$XPID"; XPID=""; }
fi

# ---------------------------------------------------------------- helpers
# kv LINE KEY: the value of KEY in a hostinfod-bench --kv line.
kv() {
	local l=" $1"
	[[ $l == *" $2="* ]] || return 0
	l=${l#* $2=}
	if [[ $2 == first_error ]]; then printf '%s' "$l"; else printf '%s' "${l%% *}"; fi
}
kvn() { local v; v=$(kv "$1" "$2"); printf '%s' "${v:-0}"; }

declare -A R # results: R[server,transport,c,field]
# cell NAME TRANSPORT C TARGET...
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
# cpu_faults PID: "ticks faults" of PID and its reaped children (utime+stime+
# cutime+cstime, minflt+cminflt from /proc/PID/stat).
cpu_faults() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	st=${st##*) }
	set -- $st
	printf '%s %s' "$((${12} + ${13} + ${14} + ${15}))" "$((${8} + ${9}))"
}
# cell NAME TRANSPORT C SERVER_PID TARGET...
cell() {
	local name=$1 tr=$2 c=$3 pid=$4 line f before after n
	shift 4
	before=$(cpu_faults "$pid")
	line=$("$BENCH" run "$@" -c "$c" -d "$SECS" --warmup "$WARMUP" --timeout 5000 --kv 2>/dev/null)
	after=$(cpu_faults "$pid")
	for f in rate p50_us p99_us max_us refused busy failed bad idle_held idle_alive first_error; do
		R[$name,$tr,$c,$f]=$(kv "$line" "$f")
	done
	n=$(kv "$line" all_sessions)
	if [[ -n $before && -n $after && ${n:-0} -gt 0 ]]; then
		set -- $before $after
		R[$name,$tr,$c,cpu_us]=$(awk -v t="$(($3 - $1))" -v hz="$CLK_TCK" -v n="$n" 'BEGIN{printf "%.0f", t * 1e6 / hz / n}')
		R[$name,$tr,$c,faults]=$(awk -v f="$(($4 - $2))" -v n="$n" 'BEGIN{printf "%.1f", f / n}')
	fi
	note "$(printf '%-10s %-4s c=%-3s %9s/s  p50 %6s us  p99 %6s us  cpu %4s us/session  refused %s busy %s failed %s bad %s' \
		"$name" "$tr" "$c" "${R[$name,$tr,$c,rate]:-?}" "${R[$name,$tr,$c,p50_us]:-?}" "${R[$name,$tr,$c,p99_us]:-?}" \
		"${R[$name,$tr,$c,cpu_us]:-?}" "${R[$name,$tr,$c,refused]:-?}" "${R[$name,$tr,$c,busy]:-?}" "${R[$name,$tr,$c,failed]:-?}" "${R[$name,$tr,$c,bad]:-?}")"
}
ms() { [[ -n ${1:-} ]] && awk -v u="$1" 'BEGIN{printf "%.2f", u/1000}' || printf 'n/a'; }
ratio() { # a/b with 2 decimals, or n/a
	[[ -n ${1:-} && -n ${2:-} ]] && awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else printf "n/a" }' || printf 'n/a'
}
ge() { awk -v a="$1" -v b="$2" 'BEGIN{ exit !(a >= b) }'; }

# smaps_rollup numbers in kB: rss uss pss
mem() {
	awk '/^Rss:/{r=$2} /^Pss:/{p=$2} /^Private_Clean:/{pc=$2} /^Private_Dirty:/{pd=$2}
	     END{ if (r == "") exit 1; printf "%s %s %s", r, pc+pd, p }' "/proc/$1/smaps_rollup" 2>/dev/null
}
first_child() {
	local c
	c=$(cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | grep -m1 .)
	printf '%s' "$c"
}
# child_mem PARENT TARGET: hold one greeted session and measure its child
child_mem() {
	local parent=$1 hp i c out=""
	shift
	"$BENCH" hold "$@" -n 1 -d 20 >"$TMP/hold.out" 2>/dev/null &
	hp=$!
	for ((i = 0; i < 100; i++)); do
		grep -q '^held=1' "$TMP/hold.out" 2>/dev/null && break
		nap 0.05
	done
	c=$(first_child "$parent")
	[[ -n $c ]] && out=$(mem "$c")
	own_kill TERM "$hp"
	wait "$hp" 2>/dev/null
	printf '%s' "$out"
}

# ---------------------------------------------------------------- matrix
SERVERS=()
[[ -n $HPID ]] && SERVERS+=(hostinfod)
SERVERS+=(floor)
[[ -n $SPID ]] && SERVERS+=(floor-static)
[[ -n $TPID ]] && SERVERS+=(tcpserver)
[[ -n $XPID ]] && SERVERS+=(xinetd)
note "matrix: ${SERVERS[*]} at c = $CONCS, ${SECS} s per cell, each $REPS times in rotation"
# run_server NAME TRANSPORT C: one cell of one server
run_server() {
	case $1,$2 in
	hostinfod,tcp) cell "$1$4" tcp "$3" "$HPID" $T_H ;;
	hostinfod,unix) cell "$1$4" unix "$3" "$HPID" $U_H ;;
	floor,tcp) cell "$1$4" tcp "$3" "$FPID" $T_F ;;
	floor,unix) cell "$1$4" unix "$3" "$FUPID" $U_F ;;
	floor-static,tcp) cell "$1$4" tcp "$3" "$SPID" $T_S ;;
	floor-static,unix) cell "$1$4" unix "$3" "$SUPID" $U_S ;;
	tcpserver,tcp) cell "$1$4" tcp "$3" "$TPID" $T_T ;;
	xinetd,tcp) cell "$1$4" tcp "$3" "$XPID" $T_X ;;
	*) return 0 ;;
	esac
}
# The machine is shared and noisy: every server runs each cell REPS times,
# in rotation (hostinfod, floor, tcpserver, xinetd, hostinfod, ...), so a
# burst of load from elsewhere hits them alike, and the run with the median
# rate stands for the cell (its latency, CPU and faults with it); every rate
# is kept for the table's "runs" column.
for tr in tcp unix; do
	for c in $CONCS; do
		for ((k = 1; k <= REPS; k++)); do
			for s in "${SERVERS[@]}"; do
				run_server "$s" "$tr" "$c" "#$k"
			done
		done
		for s in "${SERVERS[@]}"; do
			[[ -n ${R[$s#1,$tr,$c,rate]+x} ]] || continue
			runs="" bestk=""
			for ((k = 1; k <= REPS; k++)); do runs+="${R[$s#$k,$tr,$c,rate]:-0} "; done
			med=$(tr ' ' '\n' <<<"$runs" | grep . | sort -n | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}')
			for ((k = 1; k <= REPS; k++)); do [[ ${R[$s#$k,$tr,$c,rate]:-0} == "$med" ]] && bestk=$k && break; done
			for f in rate p50_us p99_us max_us refused busy failed bad idle_held idle_alive first_error cpu_us faults; do
				[[ -n $bestk && -n ${R[$s#$bestk,$tr,$c,$f]+x} ]] && R[$s,$tr,$c,$f]=${R[$s#$bestk,$tr,$c,$f]}
			done
			R[$s,$tr,$c,runs]=$(tr ' ' '\n' <<<"$runs" | grep . | paste -sd/ -)
		done
	done
done

LOAD_MATRIX=$(cut -d' ' -f1-3 /proc/loadavg)
say
say "## Sessions per second"
say
say "A session: connect, read greeting and prompt, \`date\`, reply and prompt, \`quit\`, \`Goodbye.\`, read to EOF;"
say "N clients back to back for ${SECS} s. Every server runs each cell ${REPS} times, in rotation;"
say "the run with the median rate stands for the cell (\"runs\" lists every rate). Latency is one whole session. hostinfod runs with"
say "\`[log] level = \"warn\"\` so per-session log lines do not dominate (level info is measured below)."
say "tcpserver and xinetd run \`floor -i\`, the same exchange on stdin/stdout (a fork+exec per session)."
say "Linking: hostinfod $(linkage "$HOSTINFOD"); the floor and \`floor -i\` $(linkage "$FLOOR") (\`cc -O2\`, the floor of the targets);"
say "floor-static is the same floor linked as hostinfod is (\`cc -O2 -static-pie\`), for reference."
say
say "| transport | c | server | sessions/s | runs | p50 ms | p99 ms | max ms | refused | failed | bad | server CPU µs/session | faults/session | hostinfod / this |"
say "|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for tr in tcp unix; do
	for c in $CONCS; do
		for s in "${SERVERS[@]}"; do
			[[ -n ${R[$s,$tr,$c,rate]+x} ]] || continue
			if [[ $s == hostinfod ]]; then r="—"; else r=$(ratio "${R[hostinfod,$tr,$c,rate]:-}" "${R[$s,$tr,$c,rate]}"); fi
			say "| $tr | $c | $s | ${R[$s,$tr,$c,rate]:-n/a} | ${R[$s,$tr,$c,runs]:-1 run} | $(ms "${R[$s,$tr,$c,p50_us]:-}") | $(ms "${R[$s,$tr,$c,p99_us]:-}") | $(ms "${R[$s,$tr,$c,max_us]:-}") | $((${R[$s,$tr,$c,refused]:-0} + ${R[$s,$tr,$c,busy]:-0})) | ${R[$s,$tr,$c,failed]:-n/a} | ${R[$s,$tr,$c,bad]:-n/a} | ${R[$s,$tr,$c,cpu_us]:-n/a} | ${R[$s,$tr,$c,faults]:-n/a} | $r |"
		done
	done
done
say
say "refused counts connect errors and \`Server busy\` refusals; failed: I/O error, timeout or early EOF."
say "Server CPU and minor page faults per session: parent plus reaped children, from /proc/PID/stat"
say "(utime+stime+cutime+cstime at ${CLK_TCK} Hz, minflt+cminflt), warm-up included; the client's own CPU is not counted."
errs=""
for k in "${!R[@]}"; do
	[[ $k == *,first_error && -n ${R[$k]} && ${R[$k]} != '""' ]] && errs+="- ${k%,first_error}: ${R[$k]}"$'\n'
done
[[ -n $errs ]] && { say; say "First errors seen:"; say; printf '%s' "$errs"; }

say
say "## Ratios (sessions/s, and p99 latency: lower is better)"
say
hdr="| ratio |" sep="|---|"
for c in $CONCS; do hdr+=" c=$c |"; sep+="---:|"; done
say "$hdr"
say "$sep"
row() { # label server transport field
	local line="| $1 |" c
	for c in $CONCS; do line+=" $(ratio "${R[hostinfod,$3,$c,$4]:-}" "${R[$2,$3,$c,$4]:-}") |"; done
	say "$line"
}
# Each cell's runs came in rounds (every server once per round): the ratio
# within a round cancels most of the drift between rounds. Median of the
# rounds' ratios, (min–max).
per_round() { # server transport c [full]: median of the rounds' ratios, with (min–max) if full
	local k rs=""
	for ((k = 1; k <= REPS; k++)); do
		rs+="$(awk -v a="${R[hostinfod#$k,$2,$3,rate]:-}" -v b="${R[$1#$k,$2,$3,rate]:-}" \
			'BEGIN{ if (a != "" && b > 0) printf "%.3f", a/b; else printf "n/a" }') "
	done
	tr ' ' '\n' <<<"$rs" | grep -E '^[0-9.]+$' | sort -g |
		awk -v full="${4:-}" '{v[NR]=$1} END{ if (NR == 0) { printf "n/a"; exit }
			m = NR % 2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2
			printf "%.3f", m; if (full) printf " (%s–%s)", v[1], v[NR] }'
}
rounds() { # label server transport
	local line="| $1 |" c
	for c in $CONCS; do line+=" $(per_round "$2" "$3" "$c" full) |"; done
	say "$line"
}
row "hostinfod / floor, tcp" floor tcp rate
row "hostinfod / floor, unix" floor unix rate
[[ -n $SPID ]] && row "hostinfod / floor-static, tcp" floor-static tcp rate
[[ -n $SPID ]] && row "hostinfod / floor-static, unix" floor-static unix rate
if ((REPS > 1)); then
	rounds "hostinfod / floor, tcp, per round" floor tcp
	rounds "hostinfod / floor, unix, per round" floor unix
	[[ -n $SPID ]] && rounds "hostinfod / floor-static, tcp, per round" floor-static tcp
	[[ -n $SPID ]] && rounds "hostinfod / floor-static, unix, per round" floor-static unix
fi
row "hostinfod / tcpserver, tcp" tcpserver tcp rate
row "hostinfod / xinetd, tcp" xinetd tcp rate
row "p99 hostinfod / floor, tcp" floor tcp p99_us
row "p99 hostinfod / floor, unix" floor unix p99_us

# ---------------------------------------------------------------- memory
say
say "## Memory (kB, from /proc/PID/smaps_rollup; USS = Private_Clean + Private_Dirty)"
say
say "| process | RSS | USS | PSS |"
say "|---|---:|---:|---:|"
memrow() { local m; m=$2; [[ -n $m ]] && set -- "$1" $m && say "| $1 | $2 | $3 | $4 |" || say "| $1 | n/a | n/a | n/a |"; }
H_MEM="" H_CMEM=""
if [[ -n $HPID ]]; then
	H_MEM=$(mem "$HPID")
	memrow "hostinfod parent (after the matrix)" "$H_MEM"
	H_CMEM=$(child_mem "$HPID" $T_H)
	memrow "hostinfod child (one greeted session)" "$H_CMEM"
fi
memrow "floor parent" "$(mem "$FPID")"
memrow "floor child (one greeted session)" "$(child_mem "$FPID" $T_F)"
if [[ -n $SPID ]]; then
	memrow "floor-static parent" "$(mem "$SPID")"
	memrow "floor-static child (one greeted session)" "$(child_mem "$SPID" $T_S)"
fi

# ---------------------------------------------------------------- idle
say
say "## Sessions/s with idle sessions held open (tcp, c=8)"
say
say "| server | idle held | sessions/s | vs 0 idle | p99 ms | refused | failed | bad | idle still open |"
say "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for s in hostinfod floor; do
	[[ $s == hostinfod && -z $HPID ]] && continue
	if [[ $s == hostinfod ]]; then tgt=$T_H; else tgt=$T_F; fi
	for k in $IDLES; do
		note "idle: $s with $k idle sessions"
		line=$("$BENCH" run $tgt -c 8 -d "$SECS" --warmup "$WARMUP" --idle "$k" --timeout 5000 --kv 2>/dev/null)
		for f in rate p99_us refused busy failed bad idle_held idle_alive; do R[$s,idle,$k,$f]=$(kv "$line" "$f"); done
		first_k=${IDLES%% *}
		say "| $s | ${R[$s,idle,$k,idle_held]:-n/a} | ${R[$s,idle,$k,rate]:-n/a} | $(ratio "${R[$s,idle,$k,rate]:-}" "${R[$s,idle,$first_k,rate]:-}") | $(ms "${R[$s,idle,$k,p99_us]:-}") | $((${R[$s,idle,$k,refused]:-0} + ${R[$s,idle,$k,busy]:-0})) | ${R[$s,idle,$k,failed]:-n/a} | ${R[$s,idle,$k,bad]:-n/a} | ${R[$s,idle,$k,idle_alive]:-n/a} |"
	done
done

# ---------------------------------------------------------------- reload
say
say "## Reload (hostinfod)"
say
median() { sort -n | awk '{v[NR]=$1} END{ if (NR == 0) { printf "n/a"; exit } if (NR % 2) printf "%.2f", v[(NR+1)/2]; else printf "%.2f", (v[NR/2]+v[NR/2+1])/2 }'; }
alive() { [[ -n $1 && $(ppid_of "$1") == "$BASHPID" ]]; }
RELOAD_MED="" RUL_BAD="" RUL_SENT=0
if [[ -n $HPID ]]; then
	note "reload latency: $RELOAD_PROBES probes"
	lat=() timeouts=0 why=""
	for ((i = 1; i <= RELOAD_PROBES; i++)); do
		alive "$HPID" || { why="hostinfod (pid $HPID) is gone after SIGHUP"; break; }
		write_conf warn "reload probe $i." "$P_H" hostinfod
		out=$("$BENCH" probe $T_H --hup "$HPID" --expect "reload probe $i." --max-wait 3 2>&1)
		v=$(kv "$out" probe_ms)
		if [[ -z $v || $v == timeout ]]; then
			timeouts=$((timeouts + 1))
			why="probe $i: $out"
			((timeouts >= 3)) && break
		else
			lat+=("$v")
		fi
	done
	if ((${#lat[@]})); then
		RELOAD_MED=$(printf '%s\n' "${lat[@]}" | median)
		rmin=$(printf '%s\n' "${lat[@]}" | sort -n | head -n 1)
		rmax=$(printf '%s\n' "${lat[@]}" | sort -n | tail -n 1)
		say "- reload latency (SIGHUP → new greeting served on TCP), median of ${#lat[@]}: **${RELOAD_MED} ms** (min $rmin, max $rmax)"
	fi
	((timeouts)) && say "- reload did not serve the new greeting within 3 s $timeouts time(s): \`$why\`"
	[[ -n $why && $timeouts == 0 ]] && say "- $why"

	if alive "$HPID" && ((${#lat[@]})); then
		note "reload under load: $RELOADS SIGHUPs at c=8"
		dur=$(awk -v n="$RELOADS" 'BEGIN{printf "%.1f", 2.5 + n * 0.08}')
		write_conf warn "load reload 0." "$P_H" hostinfod
		"$BENCH" run $T_H -c 8 -d "$dur" --warmup 0 --timeout 5000 --kv --errors 5 >"$TMP/rul.out" 2>"$TMP/rul.err" &
		lp=$!
		nap 1.0
		t0=$EPOCHREALTIME
		t0us=${t0//[.,]/}
		stop_us=$((t0us + $(awk -v d="$dur" 'BEGIN{printf "%d", (d - 1.5) * 1000000}')))
		for ((i = 1; i <= RELOADS; i++)); do
			# stop sending before the load ends, whatever happens
			now=${EPOCHREALTIME//[.,]/}
			((now < stop_us)) || break
			alive "$HPID" || break
			write_conf warn "load reload $i." "$P_H" hostinfod
			own_kill HUP "$HPID" || break
			RUL_SENT=$i
			nap "0.0$((20 + RANDOM % 31))"
		done
		t1=$EPOCHREALTIME
		wait "$lp" 2>/dev/null
		line=$(cat "$TMP/rul.out")
		RUL_BAD=$(($(kvn "$line" refused) + $(kvn "$line" busy) + $(kvn "$line" failed) + $(kvn "$line" bad)))
		[[ -n $line ]] || RUL_BAD=""
		last_ok=no same_pid=no
		alive "$HPID" && same_pid=yes
		alive "$HPID" && "$BENCH" probe $T_H --expect "load reload $RUL_SENT." --max-wait 3 >/dev/null 2>&1 && last_ok=yes
		say "- $RUL_SENT reloads in $(awk -v a="${t0/,/.}" -v b="${t1/,/.}" 'BEGIN{printf "%.1f", b-a}') s (spaced 20–50 ms, config changed each time) under load (tcp, c=8, ${dur} s):" \
			"$(kv "$line" sessions) sessions at $(kv "$line" rate)/s, p99 $(ms "$(kv "$line" p99_us)") ms, max $(ms "$(kv "$line" max_us)") ms;" \
			"**refused $(($(kvn "$line" refused) + $(kvn "$line" busy))), failed $(kv "$line" failed), bad $(kv "$line" bad)**;" \
			"same pid still serving: $same_pid; last config served: $last_ok"
		fe=$(kv "$line" first_error)
		[[ -n $fe && $fe != '""' ]] && say "- first error under reload: $fe"
	fi
else
	say "- hostinfod not running: ${HOSTINFOD_NOTE:-unknown reason}"
fi

# ---------------------------------------------------------------- strace
if [[ -n ${BENCH_STRACE:-} ]] && command -v strace >/dev/null; then
	say
	say "## System calls per session (strace -c -f on the parent, tcp, c=1)"
	say
	# strace_count NAME PID TARGET: prints "sessions total_calls" and leaves the table in $TMP/strace.NAME
	strace_count() {
		local name=$1 pid=$2 sp line n
		shift 2
		strace -qq -c -f -p "$pid" -o "$TMP/strace.$name" 2>/dev/null &
		sp=$!
		nap 0.5
		line=$("$BENCH" run "$@" -c 1 -d 2 --warmup 0 --kv 2>/dev/null)
		own_kill INT "$sp"
		wait "$sp" 2>/dev/null
		n=$(kv "$line" sessions)
		printf '%s' "${n:-0}"
	}
	declare -A SN
	for s in hostinfod floor; do
		[[ $s == hostinfod && -z $HPID ]] && continue
		if [[ $s == hostinfod ]]; then SN[$s]=$(strace_count hostinfod "$HPID" $T_H); else SN[$s]=$(strace_count floor "$FPID" $T_F); fi
	done
	say "| syscall | hostinfod calls/session | floor calls/session |"
	say "|---|---:|---:|"
	percall() { # strace -c table, sessions -> "syscall calls/session" lines
		awk -v n="$2" '$NF == "total" { next } NF >= 5 && $1 ~ /^[0-9.]+$/ { printf "%s %.2f\n", $NF, $4 / n }' "$1" 2>/dev/null
	}
	declare -A SC
	for s in hostinfod floor; do
		[[ -n ${SN[$s]:-} && ${SN[$s]} -gt 0 ]] || continue
		while read -r k v; do SC[$s,$k]=$v; done < <(percall "$TMP/strace.$s" "${SN[$s]}")
	done
	hz=0
	[[ -n ${SN[hostinfod]:-} && ${SN[hostinfod]} -gt 0 ]] || hz=n/a
	names=$(for k in "${!SC[@]}"; do printf '%s\n' "${k#*,}"; done | sort -u)
	for k in $names; do
		[[ $k == total ]] && continue
		say "| $k | ${SC[hostinfod,$k]:-$hz} | ${SC[floor,$k]:-0} |"
	done | sort -t'|' -k3 -rn
	hs=0 fs=0
	for k in $names; do
		[[ $k == total ]] && continue
		hs=$(awk -v a="$hs" -v b="${SC[hostinfod,$k]:-0}" 'BEGIN{print a+b}')
		fs=$(awk -v a="$fs" -v b="${SC[floor,$k]:-0}" 'BEGIN{print a+b}')
	done
	say "| **total** | $hs | $fs |"
	say
	say "(sessions traced: hostinfod ${SN[hostinfod]:-0}, floor ${SN[floor]:-0}; both parent and child calls, client excluded)"
fi

# ---------------------------------------------------------------- log level info
if [[ -n $HPID ]]; then
	note "log level info"
	stop_pid "$HPID"
	HPID=""
	write_conf info "type help for command list." "$P_I" hostinfod-info
	if start_hostinfod hostinfod-info "$P_I"; then
		cell hostinfod-info tcp 8 "$HPID" --tcp "127.0.0.1:$P_I"
		cell hostinfod-info unix 8 "$HPID" --unix "$TMP/hostinfod-info.sock"
		nlines=$(wc -l <"$TMP/hostinfod-info.log")
		say
		say "## Cost of \`[log] level = \"info\"\` (c=8, logging to stderr → a file)"
		say
		say "| transport | warn sessions/s | info sessions/s | info / warn | info p99 ms |"
		say "|---|---:|---:|---:|---:|"
		for tr in tcp unix; do
			say "| $tr | ${R[hostinfod,$tr,8,rate]:-n/a} | ${R[hostinfod-info,$tr,8,rate]:-n/a} | $(ratio "${R[hostinfod-info,$tr,8,rate]:-}" "${R[hostinfod,$tr,8,rate]:-}") | $(ms "${R[hostinfod-info,$tr,8,p99_us]:-}") |"
		done
		say
		say "($nlines log lines written during the info runs)"
		stop_pid "$HPID"
		HPID=""
	else
		say
		say "(log level info run skipped: $HOSTINFOD_NOTE)"
	fi
fi

# ---------------------------------------------------------------- default limits
if [[ -n ${R[hostinfod,tcp,${CONCS%% *},rate]:-} ]]; then
	note "default limits"
	write_conf warn "type help for command list." "$P_I" hostinfod-deflim default
	if start_hostinfod hostinfod-deflim "$P_I"; then
		say
		say "## With the default \`[limits]\` (max_children = 256, max_per_source = 32), tcp"
		say
		say "The tables above raise both limits to 4096. From one client address, concurrent"
		say "clients well under max_per_source should never see \`Server busy\`:"
		say
		say "| c | sessions/s | busy (refused) | failed | bad |"
		say "|---:|---:|---:|---:|---:|"
		for c in 4 8 16; do
			cell hostinfod-deflim tcp "$c" "$HPID" --tcp "127.0.0.1:$P_I"
			say "| $c | ${R[hostinfod-deflim,tcp,$c,rate]:-n/a} | $((${R[hostinfod-deflim,tcp,$c,refused]:-0} + ${R[hostinfod-deflim,tcp,$c,busy]:-0})) | ${R[hostinfod-deflim,tcp,$c,failed]:-n/a} | ${R[hostinfod-deflim,tcp,$c,bad]:-n/a} |"
		done
		stop_pid "$HPID"
		HPID=""
	fi
fi

# ---------------------------------------------------------------- targets
say
say "## Targets (issue 7)"
say
say "Strict comparisons of the figures above (each cell the median of its runs); on 2 shared CPUs a few per cent either way is noise."
say
verdict() { if "$@"; then printf 'PASS'; else printf 'FAIL'; fi; }
if [[ -z ${R[hostinfod,tcp,${CONCS%% *},rate]:-} ]]; then
	say "- hostinfod was not measured: ${HOSTINFOD_NOTE:-unknown reason}"
else
	minr() { # min of hostinfod/peer over transports and c
		local m="" tr c r
		for tr in $2; do for c in $CONCS; do
			r=$(ratio "${R[hostinfod,$tr,$c,$3]:-}" "${R[$1,$tr,$c,$3]:-}")
			[[ $r == n/a ]] && continue
			if [[ -z $m ]] || awk -v a="$r" -v b="$m" -v hi="$4" 'BEGIN{ exit !(hi ? a > b : a < b) }'; then m=$r; fi
		done; done
		printf '%s' "${m:-n/a}"
	}
	f=$(minr floor "tcp unix" rate 0)
	say "- sessions/s ≥ 1.00 × floor (worst cell): $f — $(verdict ge "$f" 1.00)"
	if [[ -n $SPID ]]; then
		f=$(minr floor-static "tcp unix" rate 0)
		worst=""
		for tr in tcp unix; do for c in $CONCS; do
			r=$(per_round floor-static "$tr" "$c")
			[[ $r == n/a ]] && continue
			if [[ -z $worst ]] || awk -v a="$r" -v b="$worst" 'BEGIN{ exit !(a < b) }'; then worst=$r; fi
		done; done
		say "- sessions/s ≥ 1.00 × floor-static (issue 17; worst cell): $f by the median runs, ${worst:-n/a} by the per-round medians — $(verdict ge "${worst:-0}" 1.00) by the rounds, $(verdict ge "$f" 1.00) by the medians"
	fi
	p=$(minr floor "tcp unix" p99_us 1)
	say "- p99 ≤ floor's (worst cell, hostinfod/floor): $p — $(verdict ge 1.00 "$p")"
	t=$(minr tcpserver tcp rate 0)
	x=$(minr xinetd tcp rate 0)
	say "- ≥ 3 × tcpserver: $t — $(verdict ge "$t" 3); ≥ 3 × xinetd: $x — $(verdict ge "$x" 3)"
	if [[ -n $H_MEM ]]; then
		set -- $H_MEM
		say "- parent USS ≤ 1024 kB: $2 kB — $(verdict ge 1024 "$2")"
	fi
	if [[ -n $H_CMEM ]]; then
		set -- $H_CMEM
		say "- child USS ≤ 64 kB: $2 kB — $(verdict ge 64 "$2")"
	fi
	if [[ -n $RELOAD_MED ]]; then
		say "- reload median ≤ 20 ms: $RELOAD_MED ms — $(verdict ge 20 "$RELOAD_MED")"
	else
		say "- reload median ≤ 20 ms: not measured — FAIL"
	fi
	if [[ -n $RUL_BAD ]]; then
		say "- 0 failed sessions over $RUL_SENT reloads under load: $RUL_BAD — $(verdict test "$RUL_BAD" -eq 0)"
	else
		say "- 0 failed sessions over reloads under load: not measured — FAIL"
	fi
	lo=${IDLES%% *} hi=${IDLES##* }
	ir=$(ratio "${R[hostinfod,idle,$hi,rate]:-}" "${R[hostinfod,idle,$lo,rate]:-}")
	say "- sessions/s with $hi idle ≥ 0.9 × with $lo: $ir — $( [[ $ir == n/a ]] && echo FAIL || verdict ge "$ir" 0.9)"
fi
say
say "- load average: at start $(cut -d' ' -f1-3 <<<"$LOAD_START"), after the matrix $LOAD_MATRIX, at end $(cut -d' ' -f1-3 /proc/loadavg)" \
	"(1/5/15 min; the benchmark's own clients and servers raise it during the run, so the start value and \`top\` tell whether something else was running)"
[[ -n $HOSTINFOD_NOTE ]] && say "- note: $HOSTINFOD_NOTE"

# Scale: sessions/s with 0, 1,000 and 10,000 idle sessions held, the memory
# an idle session costs, sessions/s per command. bench/scale.sh measures
# them (it runs alone too), here on the same hostinfod binary, after the
# servers above have stopped.
if [[ -z ${BENCH_NO_SCALE:-} ]]; then
	stop_started
	say
	BENCH_NO_BUILD=1 HOSTINFOD=$HOSTINFOD "$ROOT/bench/scale.sh" || note "bench/scale.sh failed (exit $?)"
fi
exit 0
