#!/usr/bin/env bash
# bench/ab.sh -- two or more hostinfod builds side by side, in rotation: the
# A/B run that decides whether a trick earns its place.
#
# Usage: bench/ab.sh [LABEL=]BINARY [LABEL=]BINARY...
#
# A BINARY written floor:PATH is the C floor (bench/floor/floor.c built, as
# compare.sh builds it, with `cc -O2` or `cc -O2 -static-pie`): it runs as
# two processes, `PATH -p PORT` and `PATH -u SOCKET`, so that hostinfod can
# be measured against it in rounds too. Its CPU and faults are the process
# serving the transport, with its reaped children.
#
# Every binary serves at once, each on its own 127.0.0.1 port and Unix socket
# (same configuration as bench/compare.sh's main table: level warn, limits
# 4096). Each round runs every cell (transport x concurrency) once per
# binary, and the order of the binaries rotates from one round to the next
# (A B C, B C A, C A B, ...), so that drift in the machine's load falls on
# every binary alike. Prints Markdown: the median sessions/s per cell, every
# run, the ratio of each binary's median to the first's, the median (and
# range) of the per-round ratios (each binary against the first in the same
# round, which cancels most of the drift), faults and server CPU per session, and each parent's memory (smaps_rollup) and mappings after the
# runs, with the load average at start and end.
#
# Environment (all optional):
#   AB_SECS=3            seconds measured per run (after AB_WARMUP=0.3)
#   AB_REPS=5            rounds
#   AB_CONC="8"          concurrency levels
#   AB_TRANSPORTS="tcp unix"
#   BENCH=PATH           hostinfod-bench (default: the workspace's release build)
#
# Only processes this script started are signalled, by PID; every wait is
# bounded; the temp dir is removed on exit.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=${AB_SECS:-3}
WARMUP=${AB_WARMUP:-0.3}
REPS=${AB_REPS:-5}
CONCS=${AB_CONC:-8}
TRANSPORTS=${AB_TRANSPORTS:-"tcp unix"}

die() { printf 'ab.sh: %s\n' "$*" >&2; exit 1; }
note() { printf '# %s\n' "$*" >&2; }
(($# >= 2)) || die "usage: bench/ab.sh [LABEL=]BINARY [LABEL=]BINARY..."

if [[ -z ${BENCH:-} ]]; then
	tdir=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
		grep -o '"target_directory":"[^"]*"' | head -n 1 | cut -d'"' -f4)
	tdir=${tdir:-$ROOT/target}
	host=$(rustc --print host-tuple 2>/dev/null)
	for BENCH in "$tdir/$host/release/hostinfod-bench" "$tdir/release/hostinfod-bench"; do
		[[ -x $BENCH ]] && break
	done
fi
[[ -x $BENCH ]] || die "no hostinfod-bench (cargo build --release -p hostinfod-bench, or set BENCH)"

declare -a LABEL=() BIN=() FLOOR=() PID=() UPID=() PORT=()
for arg in "$@"; do
	if [[ $arg == *=* ]]; then LABEL+=("${arg%%=*}") BIN+=("${arg#*=}"); else LABEL+=("$(basename "${arg#floor:}")") BIN+=("$arg"); fi
	FLOOR+=("$([[ ${BIN[-1]} == floor:* ]] && echo 1 || echo 0)")
	BIN[-1]=${BIN[-1]#floor:}
	[[ -x ${BIN[-1]} ]] || die "not an executable: ${BIN[-1]}"
done
N=${#BIN[@]}

TMP=$(mktemp -d /tmp/hostinfod-ab.XXXXXX) || die "mktemp failed"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
ulimit -n 65536 2>/dev/null || true

mapfile -t PORT < <("$BENCH" free-port -n "$N")
((${#PORT[@]} == N)) || die "cannot find $N free ports"
# Starts "$@" in the background, its output appended to build i's log;
# sets STARTED_PID.
start() {
	"$@" >>"$TMP/$i.log" 2>&1 &
	STARTED_PID=$!
	STARTED+=("$!")
}
for ((i = 0; i < N; i++)); do
	UPID[i]=""
	if ((FLOOR[i])); then
		start "${BIN[i]}" -p "${PORT[i]}"
		PID[i]=$STARTED_PID
		start "${BIN[i]}" -u "$TMP/$i.sock"
		UPID[i]=$STARTED_PID
	else
		printf '%s\n' '[listen]' "tcp = [\"127.0.0.1:${PORT[i]}\"]" "unix = [\"$TMP/$i.sock\"]" \
			'[daemon]' "pid_file = \"$TMP/$i.pid\"" \
			'[limits]' 'max_children = 4096' 'max_per_source = 4096' \
			'[log]' 'destination = "stderr"' 'level = "warn"' >"$TMP/$i.toml"
		start "${BIN[i]}" -f -c "$TMP/$i.toml"
		PID[i]=$STARTED_PID
	fi
	"$BENCH" probe --tcp "127.0.0.1:${PORT[i]}" --expect Welcome --max-wait 10 >/dev/null 2>&1 &&
		"$BENCH" probe --unix "$TMP/$i.sock" --expect Welcome --max-wait 5 >/dev/null 2>&1 ||
		die "${LABEL[i]} does not serve: $(tail -n 2 "$TMP/$i.log")"
done

kv() { local l=" $1"; [[ $l == *" $2="* ]] || return 0; l=${l#* $2=}; printf '%s' "${l%% *}"; }
stat_of() { # "ticks faults" of PID and its reaped children
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	st=${st##*) }
	set -- $st
	printf '%s %s' "$((${12} + ${13} + ${14} + ${15}))" "$((${8} + ${9}))"
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR]=$1} END{if(NR%2) print v[(NR+1)/2]; else printf "%.6g\n", (v[NR/2]+v[NR/2+1])/2}'; }
HZ=$(getconf CLK_TCK 2>/dev/null || echo 100)

declare -A RATES ROUND CPU FLT
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
note "load average at start: $LOAD_START"
for ((r = 0; r < REPS; r++)); do
	for tr in $TRANSPORTS; do
		for c in $CONCS; do
			for ((k = 0; k < N; k++)); do
				i=$(((r + k) % N))
				if [[ $tr == tcp ]]; then tgt=(--tcp "127.0.0.1:${PORT[i]}"); else tgt=(--unix "$TMP/$i.sock"); fi
				pid=${PID[i]}
				[[ $tr == unix && -n ${UPID[i]} ]] && pid=${UPID[i]}
				before=$(stat_of "$pid")
				line=$("$BENCH" run "${tgt[@]}" -c "$c" -d "$SECS" --warmup "$WARMUP" --timeout 5000 --kv 2>/dev/null)
				after=$(stat_of "$pid")
				rate=$(kv "$line" rate) n=$(kv "$line" all_sessions)
				bad=$(($(kv "$line" failed) + $(kv "$line" bad) + $(kv "$line" refused)))
				((bad == 0)) || note "${LABEL[i]} $tr c=$c: $bad failed/bad/refused sessions"
				RATES[$i,$tr,$c]+="$rate "
				ROUND[$i,$tr,$c,$r]=$rate
				set -- $before $after
				if ((${n:-0} > 0)) && (($# == 4)); then
					CPU[$i,$tr,$c]+="$(awk -v t="$(($3 - $1))" -v hz="$HZ" -v n="$n" 'BEGIN{printf "%.0f", t*1e6/hz/n}') "
					FLT[$i,$tr,$c]+="$(awk -v f="$(($4 - $2))" -v n="$n" 'BEGIN{printf "%.1f", f/n}') "
				fi
				note "round $((r + 1))/$REPS $tr c=$c ${LABEL[i]}: ${rate:-?}/s"
			done
		done
	done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

printf '## A/B: %s\n\n' "${LABEL[*]}"
printf -- '- date: %s; %s CPUs; %s rounds of %s s per cell, order rotating\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(nproc)" "$REPS" "$SECS"
printf -- '- load average (1/5/15 min): at start %s, at end %s\n' "$LOAD_START" "$LOAD_END"
printf -- '- commit: %s\n\n' "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
printf '| transport | c | build | median sessions/s | runs | / %s | per-round ratio, median (min–max) | CPU µs/session | faults/session |\n' "${LABEL[0]}"
printf '|---|---:|---|---:|---|---:|---:|---:|---:|\n'
for tr in $TRANSPORTS; do
	for c in $CONCS; do
		m0=$(median <<<"${RATES[0,$tr,$c]}")
		for ((i = 0; i < N; i++)); do
			m=$(median <<<"${RATES[$i,$tr,$c]}")
			ratio=$(awk -v a="$m" -v b="$m0" 'BEGIN{if (b > 0) printf "%.3f", a/b; else print "-"}')
			pr=""
			for ((r = 0; r < REPS; r++)); do
				pr+="$(awk -v a="${ROUND[$i,$tr,$c,$r]:-0}" -v b="${ROUND[0,$tr,$c,$r]:-0}" 'BEGIN{if (b > 0) printf "%.3f", a/b}') "
			done
			pr="$(median <<<"$pr") ($(tr ' ' '\n' <<<"$pr" | grep . | sort -g | awk 'NR==1{lo=$1} {hi=$1} END{printf "%s–%s", lo, hi}'))"
			printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$tr" "$c" "${LABEL[i]}" "$m" \
				"$(tr ' ' '/' <<<"${RATES[$i,$tr,$c]% }")" "$ratio" "$pr" \
				"$(median <<<"${CPU[$i,$tr,$c]:-}")" "$(median <<<"${FLT[$i,$tr,$c]:-}")"
		done
	done
done
printf '\n| build | parent RSS kB | parent USS kB | mappings | file size kB |\n|---|---:|---:|---:|---:|\n'
# (a floor: its TCP process)
for ((i = 0; i < N; i++)); do
	sm=/proc/${PID[i]}/smaps_rollup
	rss=$(awk '/^Rss:/{print $2}' "$sm" 2>/dev/null)
	uss=$(awk '/^Private_(Clean|Dirty):/{s+=$2} END{print s}' "$sm" 2>/dev/null)
	maps=$(wc -l <"/proc/${PID[i]}/maps" 2>/dev/null)
	printf '| %s | %s | %s | %s | %s |\n' "${LABEL[i]}" "$rss" "$uss" "$maps" "$(($(stat -c %s "${BIN[i]}") / 1024))"
done
