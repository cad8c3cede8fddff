#!/usr/bin/env bash
# bench/scale.sh -- how hostinfod scales: sessions/s with 0, 1,000 and
# 10,000 idle sessions held, the memory one idle session costs the system,
# and sessions/s per command. hostinfod beside the C floor (bench/floor,
# `cc -O2` and `cc -O2 -static-pie`), on loopback TCP. Prints Markdown.
#
# Usage: bench/scale.sh            (from anywhere inside a clone)
#
# Environment (all optional):
#   BENCH_SECS=3            seconds measured per cell (after a 0.3 s warm-up)
#   BENCH_REPS=3            runs of each cell per server (in rotation; median kept)
#   BENCH_SCALE_IDLE="0 1000 10000"   idle sessions held for the scale table
#   BENCH_MEM_IDLE=10000    idle sessions held for the memory measurement
#   BENCH_CMDS="date who cookie motd help"   commands of the per-command table
#   BENCH_MAX_LOAD=1.5      wait (at most BENCH_LOAD_WAIT s) for the 1-minute
#   BENCH_LOAD_WAIT=120     load average to fall below this before starting
#   BENCH_FORTUNES=/usr/share/games/fortunes   fortune_paths for `cookie`
#                           (Debian's `fortunes` package; installed with
#                           apt-get when missing, as root, unless BENCH_NO_INSTALL=1)
#   BENCH_NO_BUILD=1        do not run cargo/cc's release build of hostinfod
#   HOSTINFOD=PATH          the hostinfod binary (default: the release build)
#   HOSTINFOD_B=PATH        a second hostinfod build, run beside the first in
#                           every table (A/B: the two alternate in each rotation)
#   BENCH_ONLY="scale mem cmd"   the sections to run
#
# Everything listens on 127.0.0.1 in a private temp dir. Only processes this
# script started are signalled, by PID, after checking they are still its
# children; every loop is bounded in count and time.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=${BENCH_SECS:-3}
WARMUP=${BENCH_WARMUP:-0.3}
REPS=${BENCH_REPS:-3}
IDLES=${BENCH_SCALE_IDLE:-"0 1000 10000"}
MEM_IDLE=${BENCH_MEM_IDLE:-10000}
CMDS=${BENCH_CMDS:-"date who cookie motd help"}
MAX_LOAD=${BENCH_MAX_LOAD:-1.5}
LOAD_WAIT=${BENCH_LOAD_WAIT:-120}
FORTUNES=${BENCH_FORTUNES:-/usr/share/games/fortunes}
ONLY=${BENCH_ONLY:-"scale mem cmd"}

say() { printf '%s\n' "$*"; }
note() { printf '# %s\n' "$*" >&2; }
die() { printf 'scale.sh: %s\n' "$*" >&2; exit 1; }
want() { [[ " $ONLY " == *" $1 "* ]]; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

TMP=$(mktemp -d /tmp/hostinfod-scale.XXXXXX) || die "mktemp failed"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# ---------------------------------------------------------------- limits
MAX_IDLE=0
for k in $IDLES $MEM_IDLE; do ((k > MAX_IDLE)) && MAX_IDLE=$k; done
# The load generator holds every idle session's socket: raise the open
# files limit as far as the hard limit allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
NPROC=$(ulimit -u)
PID_MAX=$(cat /proc/sys/kernel/pid_max)
THREADS_MAX=$(cat /proc/sys/kernel/threads-max)
CG_PIDS=max
for f in /sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max; do
	[[ -r $f ]] && { CG_PIDS=$(cat "$f"); break; }
done
PROCS_NOW=$(ls -d /proc/[0-9]* 2>/dev/null | wc -l)
TW_REUSE=$(cat /proc/sys/net/ipv4/tcp_tw_reuse 2>/dev/null || echo '?')
PORTS=$(tr '\t' '-' </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo '?')
# room for MAX_IDLE children (one per session) beside what already runs
need_procs=$((MAX_IDLE + 200))
pids_room=$PID_MAX
[[ $NPROC != unlimited ]] && ((NPROC < pids_room)) && pids_room=$NPROC
((THREADS_MAX < pids_room)) && pids_room=$THREADS_MAX
[[ $CG_PIDS != max ]] && ((CG_PIDS < pids_room)) && pids_room=$CG_PIDS
pids_room=$((pids_room - PROCS_NOW))
LIMIT_NOTE=""
if ((NOFILE < MAX_IDLE + 256)); then
	LIMIT_NOTE+="open files limit $NOFILE < $MAX_IDLE idle sessions + 256; "
fi
if ((pids_room < need_procs)); then
	LIMIT_NOTE+="room for $pids_room more processes < $need_procs; "
fi
if [[ -n $LIMIT_NOTE ]]; then
	# Rows that cannot fit are dropped, not run half-way.
	keep=""
	for k in $IDLES; do
		((k + 256 <= NOFILE && k + 200 <= pids_room)) && keep+="$k "
	done
	IDLES=${keep% }
	((MEM_IDLE + 256 <= NOFILE && MEM_IDLE + 200 <= pids_room)) || MEM_IDLE=1000
fi

# ---------------------------------------------------------------- quiet machine
t_wait0=$SECONDS
LOAD_BEFORE_WAIT=$(load)
while ((SECONDS - t_wait0 < LOAD_WAIT)); do
	awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v m="$MAX_LOAD" 'BEGIN{ exit !(l < m) }' && break
	nap 5
done
LOAD_START=$(load)

CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
say "# hostinfod scale benchmark"
say
say "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
say "- machine: $(nproc) CPUs, ${CPU:-unknown CPU}, kernel $(uname -r), $(awk '/^MemTotal:/{printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM"
envs=""
for v in BENCH_SECS BENCH_REPS BENCH_SCALE_IDLE BENCH_MEM_IDLE BENCH_CMDS BENCH_ONLY HOSTINFOD_B; do
	[[ -n ${!v:-} ]] && envs+="$v=\"${!v}\" "
done
say "- command: \`${envs}bench/scale.sh\`"
say "- load average: $LOAD_BEFORE_WAIT when called, $LOAD_START at the start ($((SECONDS - t_wait0)) s waited for < $MAX_LOAD, at most $LOAD_WAIT)"
say "- limits: open files $NOFILE (hard $(ulimit -Hn)); processes: ulimit -u $NPROC, pid_max $PID_MAX, threads-max $THREADS_MAX, cgroup pids.max $CG_PIDS, $PROCS_NOW running; room for $pids_room more"
say "- TCP: ephemeral ports $PORTS, tcp_tw_reuse $TW_REUSE"
[[ -n $LIMIT_NOTE ]] && say "- **limits too low**: ${LIMIT_NOTE}idle rows run: $IDLES; memory measured with $MEM_IDLE"
say "- cell: ${SECS} s measured after ${WARMUP} s warm-up, c = 8, TCP, each cell $REPS times in rotation, median kept"
say "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || echo ' (working tree modified)')"

# ---------------------------------------------------------------- build
TARGET_DIR=${CARGO_TARGET_DIR:-}
if [[ -z $TARGET_DIR ]]; then
	TARGET_DIR=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
		grep -o '"target_directory":"[^"]*"' | head -n 1 | cut -d'"' -f4)
	[[ -n $TARGET_DIR ]] || TARGET_DIR=$ROOT/target
fi
if [[ -z ${BENCH_NO_BUILD:-} ]]; then
	note "building hostinfod and hostinfod-bench"
	(cd "$ROOT" && cargo build --release --quiet -p hostinfod-bench -p hostinfod) || die "cannot build"
fi
HOST_TUPLE=$(rustc --print host-tuple 2>/dev/null || rustc -vV 2>/dev/null | sed -n 's/^host: //p')
OUT_DIR=$TARGET_DIR/$HOST_TUPLE/release
[[ -n $HOST_TUPLE && -d $OUT_DIR ]] || OUT_DIR=$TARGET_DIR/release
BENCH=$OUT_DIR/hostinfod-bench
HOSTINFOD=${HOSTINFOD:-$OUT_DIR/hostinfod}
HOSTINFOD_B=${HOSTINFOD_B:-}
[[ -x $BENCH ]] || die "no $BENCH (cargo build --release -p hostinfod-bench)"
[[ -x $HOSTINFOD ]] || die "no $HOSTINFOD"
[[ -z $HOSTINFOD_B || -x $HOSTINFOD_B ]] || die "HOSTINFOD_B=$HOSTINFOD_B is not executable"
cc -O2 -o "$TMP/floor" "$ROOT/bench/floor/floor.c" || die "cannot build the floor"
FLOOR_STATIC=""
cc -O2 -static-pie -o "$TMP/floor-static" "$ROOT/bench/floor/floor.c" 2>/dev/null && FLOOR_STATIC=$TMP/floor-static

# ---------------------------------------------------------------- command data
# Debian's fortunes package (129 files with their strfile indexes).
if [[ $FORTUNES == /usr/share/games/fortunes && ! -e $FORTUNES/literature.dat ]] &&
	[[ -z ${BENCH_NO_INSTALL:-} && $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
	note "installing fortunes"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fortunes >"$TMP/apt.log" 2>&1 ||
		note "apt-get install fortunes failed: $(tail -n 2 "$TMP/apt.log")"
fi
N_FORTUNE_FILES="$(find "$FORTUNES" -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' 2>/dev/null | wc -l) fortune files, $(find "$FORTUNES" -maxdepth 1 2>/dev/null | tail -n +2 | wc -l) entries"
# A utmp file of 20 logged-in users, written by the C library's own writer,
# their login process this script (alive for the whole run).
cat >"$TMP/mkutmp.c" <<'EOF'
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <stdlib.h>
#include <utmp.h>
/* mkutmp FILE PID: 20 users whose login process is PID (alive: hostinfod,
 * like who(1), skips records whose process is gone). */
int main(int argc, char **argv)
{
	struct utmp ut;
	int i;
	if (argc != 3 || utmpname(argv[1]) != 0)
		return 1;
	setutent();
	for (i = 0; i < 20; i++) {
		memset(&ut, 0, sizeof ut);
		ut.ut_type = USER_PROCESS;
		ut.ut_pid = atoi(argv[2]);
		snprintf(ut.ut_line, sizeof ut.ut_line, "pts/%d", i);
		snprintf(ut.ut_id, sizeof ut.ut_id, "p%d", i);
		snprintf(ut.ut_user, sizeof ut.ut_user, "user%02d", i);
		snprintf(ut.ut_host, sizeof ut.ut_host, "192.0.2.%d", i + 1);
		ut.ut_tv.tv_sec = (int)time(NULL) - 60 * i;
		if (!pututline(&ut))
			return 1;
	}
	endutent();
	return 0;
}
EOF
: >"$TMP/utmp"
{ cc -O2 -o "$TMP/mkutmp" "$TMP/mkutmp.c" && "$TMP/mkutmp" "$TMP/utmp" "$$"; } || die "cannot write the utmp file"
# A motd of 2 KiB: 32 lines of 64 bytes.
for ((i = 1; i <= 32; i++)); do printf 'Message of the day, line %02d: %-31s\n' "$i" "the quick brown fox"; done >"$TMP/motd"

# ---------------------------------------------------------------- servers
mapfile -t PORT < <("$BENCH" free-port -n 4)
((${#PORT[@]} == 4)) || die "cannot find free ports"
ready() { "$BENCH" probe --tcp "127.0.0.1:$1" --expect Welcome --max-wait "${2:-10}" >/dev/null 2>&1; }
declare -A PID_OF PORT_OF

start_hostinfod() { # NAME BINARY PORT
	local name=$1 bin=$2 port=$3
	cat >"$TMP/$name.toml" <<EOF
# written by bench/scale.sh
[listen]
tcp = ["127.0.0.1:$port"]
unix = []
[daemon]
pid_file = "$TMP/$name.pid"
[limits]
max_children = $((MAX_IDLE + 4096))
max_per_source = $((MAX_IDLE + 4096))
idle_timeout_secs = 600
[commands]
utmp_file = "$TMP/utmp"
motd_files = ["$TMP/motd"]
fortune_paths = ["$FORTUNES"]
[log]
destination = "stderr"
level = "warn"
EOF
	"$bin" -t -c "$TMP/$name.toml" >"$TMP/$name.check" 2>&1 || die "$name: -t: $(head -n 1 "$TMP/$name.check")"
	"$bin" -f -c "$TMP/$name.toml" >>"$TMP/$name.log" 2>&1 &
	PID_OF[$name]=$!
	PORT_OF[$name]=$port
	STARTED+=("$!")
	ready "$port" || die "$name does not serve: $(tail -n 2 "$TMP/$name.log" | tr '\n' ' ')"
}
start_floor() { # NAME BINARY PORT
	"$2" -p "$3" &
	PID_OF[$1]=$!
	PORT_OF[$1]=$3
	STARTED+=("$!")
	ready "$3" || die "$1 does not serve"
}
SERVERS=(hostinfod)
start_hostinfod hostinfod "$HOSTINFOD" "${PORT[0]}"
if [[ -n $HOSTINFOD_B ]]; then
	SERVERS+=(hostinfod-B)
	start_hostinfod hostinfod-B "$HOSTINFOD_B" "${PORT[3]}"
fi
FLOORS=(floor)
start_floor floor "$TMP/floor" "${PORT[1]}"
if [[ -n $FLOOR_STATIC ]]; then
	FLOORS+=(floor-static)
	start_floor floor-static "$FLOOR_STATIC" "${PORT[2]}"
fi
say "- servers: hostinfod \`$HOSTINFOD\`${HOSTINFOD_B:+, hostinfod-B \`$HOSTINFOD_B\`}; floor (\`cc -O2\`)${FLOOR_STATIC:+, floor-static (\`cc -O2 -static-pie\`)}; each with its default listen backlog"
say "- command data: fortune_paths = $FORTUNES ($N_FORTUNE_FILES), utmp of 20 users, motd of $(wc -c <"$TMP/motd") bytes"

# ---------------------------------------------------------------- helpers
kv() {
	local l=" $1"
	[[ $l == *" $2="* ]] || return 0
	l=${l#* $2=}
	if [[ $2 == first_error ]]; then printf '%s' "$l"; else printf '%s' "${l%% *}"; fi
}
children_of() { cat /proc/"$1"/task/*/children 2>/dev/null | wc -w; }
# Waits (at most 60 s) until PID has at most N children: the sessions of
# the previous cell are gone before the next starts.
settle() {
	local pid=$1 n=${2:-0} i
	for ((i = 0; i < 600; i++)); do
		(($(children_of "$pid") <= n)) && return 0
		nap 0.1
	done
	note "$(children_of "$pid") children of $pid still live after 60 s"
}
median() { sort -n | awk '{v[NR]=$1} END{ if (NR == 0) { printf "n/a"; exit } if (NR % 2) printf "%s", v[(NR+1)/2]; else printf "%.1f", (v[NR/2]+v[NR/2+1])/2 }'; }
ratio() { [[ -n ${1:-} && -n ${2:-} && $1 != n/a && $2 != n/a ]] && awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else printf "n/a" }' || printf 'n/a'; }
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
# parent_ticks PID: utime + stime of PID itself (its children not included)
parent_ticks() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || { printf 0; return; }
	st=${st##*) }
	set -- $st
	printf '%s' "$((${12} + ${13}))"
}
declare -A RATES BAD PCPU
# run_cell KEY NAME IDLE COMMAND: one run; the rate is appended to RATES[KEY],
# the parent's CPU time per session (µs, idle sessions' set-up included) to PCPU[KEY]
run_cell() {
	local key=$1 name=$2 k=$3 cmd=$4 line rate bad t0 t1 n
	settle "${PID_OF[$name]}" 0
	t0=$(parent_ticks "${PID_OF[$name]}")
	line=$("$BENCH" run --tcp "127.0.0.1:${PORT_OF[$name]}" -c 8 -d "$SECS" --warmup "$WARMUP" \
		--idle "$k" --command "$cmd" --timeout 5000 --kv 2>"$TMP/cell.err")
	t1=$(parent_ticks "${PID_OF[$name]}")
	n=$(kv "$line" all_sessions)
	PCPU[$key]+="$(awk -v t="$((t1 - t0))" -v hz="$CLK_TCK" -v n="${n:-0}" -v k="$k" 'BEGIN{ if (n + k > 0) printf "%.0f", t * 1e6 / hz / (n + k); else print 0 }') "
	rate=$(kv "$line" rate)
	bad=$(($(kv "$line" refused) + $(kv "$line" busy) + $(kv "$line" failed) + $(kv "$line" bad)))
	if ((k > 0)) && [[ $(kv "$line" idle_alive) != "$k" ]]; then
		note "$name: only $(kv "$line" idle_alive)/$k idle sessions open at the end ($(head -c 200 "$TMP/cell.err"))"
		bad=$((bad + k - $(kv "$line" idle_alive)))
	fi
	RATES[$key]+="${rate:-0} "
	BAD[$key]=$((${BAD[$key]:-0} + bad))
	note "$(printf '%-12s idle=%-6s %-7s %9s/s  bad %s  load %s' "$name" "$k" "$cmd" "${rate:-?}" "$bad" "$(load)")"
	[[ $bad -gt 0 ]] && note "  first error: $(kv "$line" first_error)"
}
med_of() { printf '%s\n' ${RATES[$1]:-} | median; }

# ---------------------------------------------------------------- scale
if want scale && [[ -n $IDLES ]]; then
	note "scale: idle $IDLES, servers ${SERVERS[*]} ${FLOORS[*]}"
	for ((r = 1; r <= REPS; r++)); do
		for k in $IDLES; do
			for s in "${SERVERS[@]}" "${FLOORS[@]}"; do
				run_cell "scale,$s,$k" "$s" "$k" date
			done
		done
	done
	LOAD_SCALE=$(load)
	say
	say "## Sessions/s with idle sessions held (TCP, c = 8, \`date\`)"
	say
	hdr="| server |" sep="|---|"
	for k in $IDLES; do hdr+=" $k idle |" sep+="---:|"; done
	first=${IDLES%% *}
	for k in $IDLES; do [[ $k == "$first" ]] || { hdr+=" $k / $first |" sep+="---:|"; }; done
	say "$hdr failed |"
	say "$sep---:|"
	for s in "${SERVERS[@]}" "${FLOORS[@]}"; do
		row="| $s |" bad=0
		for k in $IDLES; do row+=" $(med_of "scale,$s,$k") |"; bad=$((bad + ${BAD[scale,$s,$k]:-0})); done
		for k in $IDLES; do [[ $k == "$first" ]] || row+=" **$(ratio "$(med_of "scale,$s,$k")" "$(med_of "scale,$s,$first")")** |"; done
		say "$row $bad |"
	done
	say
	say "The parent's own CPU time per session (µs; utime + stime of the listening"
	say "process over the cell, divided by the sessions served and the idle ones opened;"
	say "median of the runs). What grows with live sessions in the parent shows here,"
	say "apart from what the machine's other load does to the rate:"
	say
	say "$hdr"
	say "$sep"
	for s in "${SERVERS[@]}" "${FLOORS[@]}"; do
		row="| $s |"
		for k in $IDLES; do row+=" $(printf '%s\n' ${PCPU[scale,$s,$k]:-} | median) |"; done
		for k in $IDLES; do [[ $k == "$first" ]] || row+=" $(ratio "$(printf '%s\n' ${PCPU[scale,$s,$k]:-} | median)" "$(printf '%s\n' ${PCPU[scale,$s,$first]:-} | median)") |"; done
		say "$row"
	done
	say
	say "Runs (sessions/s, in order):"
	for s in "${SERVERS[@]}" "${FLOORS[@]}"; do
		for k in $IDLES; do say "- $s, $k idle: ${RATES[scale,$s,$k]}"; done
	done
	say
	say "(load average after this table: $LOAD_SCALE)"
fi

# ---------------------------------------------------------------- memory
mem_avail() { awk '/^MemAvailable:/{print $2}' /proc/meminfo; }
pss_children() { # sum of the children's Pss (kB) and their count, in one awk
	local files=() c
	for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do files+=("/proc/$c/smaps_rollup"); done
	((${#files[@]})) || { printf '0 0'; return; }
	awk '/^Pss:/{s+=$2; n++; nextfile} END{printf "%d %d", s, n}' "${files[@]}" 2>/dev/null
}
if want mem; then
	say
	say "## Memory per idle session ($MEM_IDLE held, TCP)"
	say
	say "MemAvailable before and after (the system's whole cost: the child, its kernel"
	say "structures, both sockets) and the sum of the children's PSS, each divided by the count."
	say "Median of $REPS runs per server, in rotation."
	say
	say "| server | MemAvailable Δ / session kB | Σ PSS / session kB | sessions held |"
	say "|---|---:|---:|---:|"
	declare -A MA PS HELD
	for ((r = 1; r <= REPS; r++)); do
		for s in "${SERVERS[@]}" "${FLOORS[@]}"; do
			pid=${PID_OF[$s]}
			settle "$pid" 0
			nap 1
			before=$(mem_avail)
			"$BENCH" hold --tcp "127.0.0.1:${PORT_OF[$s]}" -n "$MEM_IDLE" -d 120 >"$TMP/hold.out" 2>"$TMP/hold.err" &
			hp=$!
			STARTED+=("$hp")
			for ((i = 0; i < 1200; i++)); do
				grep -q '^held=' "$TMP/hold.out" 2>/dev/null && break
				nap 0.1
			done
			held=$(sed -n 's/^held=//p' "$TMP/hold.out")
			nap 2
			after=$(mem_avail)
			set -- $(pss_children "$pid")
			pss=$1 nch=$2
			own_kill TERM "$hp"
			wait "$hp" 2>/dev/null
			if [[ -n $held && $held -gt 0 ]]; then
				MA[$s]+="$(awk -v a="$before" -v b="$after" -v n="$held" 'BEGIN{printf "%.1f", (a-b)/n}') "
				PS[$s]+="$(awk -v p="$pss" -v n="$nch" 'BEGIN{ if (n > 0) printf "%.1f", p/n; else print "n/a" }') "
				HELD[$s]=$held
			fi
			note "mem: $s held ${held:-0}, children $nch, MemAvailable Δ $((before - after)) kB, Σ PSS $pss kB"
		done
	done
	for s in "${SERVERS[@]}" "${FLOORS[@]}"; do
		say "| $s | $(printf '%s\n' ${MA[$s]:-} | median) | $(printf '%s\n' ${PS[$s]:-} | median) | ${HELD[$s]:-0} |"
	done
	say
	for s in "${SERVERS[@]}" "${FLOORS[@]}"; do say "- $s runs: MemAvailable Δ ${MA[$s]:-} / Σ PSS ${PS[$s]:-}"; done
	say
	say "(load average after this table: $(load))"
fi

# ---------------------------------------------------------------- commands
if want cmd; then
	note "per command: $CMDS"
	for ((r = 1; r <= REPS; r++)); do
		for cmd in $CMDS; do
			for s in "${SERVERS[@]}"; do run_cell "cmd,$s,$cmd" "$s" 0 "$cmd"; done
		done
	done
	say
	say "## Sessions/s per command (hostinfod, TCP, c = 8)"
	say
	hdr="| command |" sep="|---|"
	for s in "${SERVERS[@]}"; do hdr+=" $s sessions/s | $s / date |" sep+="---:|---:|"; done
	[[ -n $HOSTINFOD_B ]] && { hdr+=" B / A |"; sep+="---:|"; }
	say "$hdr failed |"
	say "$sep---:|"
	for cmd in $CMDS; do
		row="| \`$cmd\` |" bad=0
		for s in "${SERVERS[@]}"; do
			row+=" $(med_of "cmd,$s,$cmd") | $(ratio "$(med_of "cmd,$s,$cmd")" "$(med_of "cmd,$s,date")") |"
			bad=$((bad + ${BAD[cmd,$s,$cmd]:-0}))
		done
		[[ -n $HOSTINFOD_B ]] && row+=" $(ratio "$(med_of "cmd,hostinfod-B,$cmd")" "$(med_of "cmd,hostinfod,$cmd")") |"
		say "$row $bad |"
	done
	say
	say "Runs (sessions/s, in order):"
	for s in "${SERVERS[@]}"; do
		for cmd in $CMDS; do say "- $s, \`$cmd\`: ${RATES[cmd,$s,$cmd]}"; done
	done
fi

say
say "- load average at the end: $(load) (1/5/15 min; the benchmark's own clients and servers raise it)"
exit 0
