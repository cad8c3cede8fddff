# bench/lib.sh -- what the benchmark scripts share, sourced by compare.sh,
# scale.sh and ab.sh once they have set TMP (their private temp dir):
# stopping only the processes they started, by PID, and a sleep that does
# not fork. A script adds each PID it starts to STARTED; on exit every one
# still a child of the script is stopped and TMP is removed.

declare -a STARTED=()

# The parent pid of PID, or nothing when PID is gone.
ppid_of() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	set -- $stat
	printf '%s' "$2"
}

# Signals a process only while it is still a child of this shell (so a
# reused PID is never hit).
own_kill() {
	local sig=$1 pid=$2
	[[ -n $pid ]] || return 1
	[[ $(ppid_of "$pid") == "$BASHPID" ]] || return 1
	kill "-$sig" "$pid" 2>/dev/null
}

# Stops one started process: SIGTERM, a wait of at most $2 seconds
# (default 7), then SIGKILL.
stop_pid() {
	local pid=$1 grace=${2:-7} i
	own_kill TERM "$pid" || { wait "$pid" 2>/dev/null; return 0; }
	for ((i = 0; i < grace * 20; i++)); do
		[[ $(ppid_of "$pid") == "$BASHPID" ]] || break
		[[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]] && break
		sleep 0.05
	done
	own_kill KILL "$pid"
	wait "$pid" 2>/dev/null
	return 0
}

# Stops every process in STARTED.
stop_started() {
	local p
	for p in "${STARTED[@]}"; do
		[[ -n $p ]] && stop_pid "$p" 7
	done
	STARTED=()
}

bench_cleanup() {
	stop_started
	[[ -d $TMP ]] && rm -rf -- "$TMP"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM HUP
trap 'exit 141' PIPE

# A sleep that does not fork: read with a timeout from a FIFO nobody writes.
mkfifo "$TMP/sleep.fifo"
exec {SLEEPFD}<>"$TMP/sleep.fifo"
nap() { read -r -t "$1" -u "$SLEEPFD" _ 2>/dev/null || true; }
