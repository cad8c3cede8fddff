#!/usr/bin/env bash
# tests/systemd/run.sh — hostinfod under a real, booted systemd, on Debian 12
# (bookworm, systemd 252, utmp) and Debian 13 (trixie, systemd 257, no utmp).
#
#   tests/systemd/run.sh [PATH/TO/hostinfod_VERSION_ARCH.deb]
#
# Without an argument the package is built with `cargo deb`.  Needs root and
# Debian tools; what is missing is installed with apt-get: debootstrap,
# debian-archive-keyring (bookworm's has the trixie keys), systemd-container
# (systemd-nspawn), util-linux (nsenter), lintian, and dpkg-dev when building.
# HOSTINFOD_SYSTEMD_RELEASES picks the releases (default "bookworm trixie").
#
# The package is built and checked with lintian once; then, for each
# release, this script runs itself as `run.sh --one RELEASE DEB`: a minimal
# Debian root of that release with systemd and openssh-server is
# debootstrapped once into target/systemd-test/cache/RELEASE (reused while
# present; HOSTINFOD_SYSTEMD_CACHE moves the cache directory), copied for
# each run, booted with systemd-nspawn in its own network namespace, and
# driven from here with nsenter.  Steps: install the .deb; the unit is
# enabled and active; sessions over TCP and the Unix socket; a real SSH
# login (a test user, key-based, with a pty, over the container's loopback)
# held open while hostinfod's `who` is compared with who(1) line for line
# (on bookworm both read utmp, on trixie who(1) reads systemd-logind and so
# does hostinfod's who_source = "auto"); `systemctl reload` with a new
# greeting (same MainPID, new greeting, `who` still right) and with a broken
# file (reload fails, old greeting still served); restart on failure but not
# on a configuration error; socket activation from hostinfod.socket;
# `systemctl stop` leaves nothing in the cgroup; one process per connection
# through hostinfod-accept.socket; `dpkg -r` and `dpkg -P`.
# Every wait is bounded, and each container is always torn down, by the pid
# this script started.  Prints PASS/FAIL per step, "systemd (RELEASE): N
# passed, M failed" per release and ends with "systemd: N passed, M failed";
# exits 1 on any failure.

# Single-quoted scripts run inside the container; the helpers are called
# indirectly (check, wait_for).
# shellcheck disable=SC2016,SC2317
set -uo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${HOSTINFOD_SYSTEMD_WORK:-$REPO/target/systemd-test}
RELEASES=${HOSTINFOD_SYSTEMD_RELEASES:-bookworm trixie}
# --one RELEASE DEB: one release's container (run by this script itself).
RELEASE=
if [ "${1:-}" = --one ]; then
    RELEASE=${2:-}
    shift 2
fi
CACHE=${HOSTINFOD_SYSTEMD_CACHE:-$WORK/cache}/$RELEASE
ROOT=
[ -z "$RELEASE" ] || ROOT=$WORK/root-$RELEASE
NSPAWN_LOG=$WORK/nspawn-$RELEASE.log
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
INCLUDE=systemd,systemd-sysv,dbus,libpam-systemd,netcat-openbsd,openssh-server,openssh-client
MACHINE=hostinfod-$RELEASE
PORT=2345
SOCK=/run/hostinfod/hostinfod.sock
CONF=/etc/hostinfod/hostinfod.toml
# Not UTC, and not a whole hour from it: login times are shown in local time.
ZONE=Asia/Kathmandu
WHO_USER=hiwho

passed=0
failed=0
NSPAWN_PID=
INIT_PID=

log() { printf '%s\n' "systemd: $*" >&2; }
die() {
    log "FATAL: $*"
    failed=$((failed + 1))
    finish
}
pass() { passed=$((passed + 1)); printf 'PASS: %s\n' "$1"; }
fail() {
    failed=$((failed + 1))
    printf 'FAIL: %s\n' "$1"
    if [ -n "${2:-}" ]; then printf '%s\n' "$2" | sed 's/^/    | /'; fi
}
# check NAME COMMAND...: PASS when the command succeeds.
check() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$out"; fi
}

# ---------------------------------------------------------------------------
# The container.

# C CMD...: run CMD inside the container (all its namespaces), clean env, bounded.
C() {
    timeout 60 nsenter -t "$INIT_PID" -a \
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 TERM=dumb SYSTEMD_PAGER= "$@"
}

teardown() {
    [ -n "$NSPAWN_PID" ] || return 0
    if kill -0 "$NSPAWN_PID" 2>/dev/null; then
        # SIGTERM makes systemd-nspawn power the container off cleanly.
        kill -TERM "$NSPAWN_PID" 2>/dev/null
        for _ in $(seq 1 60); do
            kill -0 "$NSPAWN_PID" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$NSPAWN_PID" 2>/dev/null; then
            log "container did not power off within 30 s; killing it"
            [ -n "$INIT_PID" ] && kill -KILL "$INIT_PID" 2>/dev/null
            kill -KILL "$NSPAWN_PID" 2>/dev/null
        fi
    fi
    wait "$NSPAWN_PID" 2>/dev/null
    NSPAWN_PID=
}

finish() {
    trap - EXIT INT TERM
    teardown
    if [ -z "$ROOT" ]; then
        :
    elif [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]; then
        rm -rf "$ROOT"
    elif [ -d "$ROOT" ]; then
        log "container root kept for inspection: $ROOT (nspawn log: $NSPAWN_LOG)"
    fi
    printf 'systemd%s: %d passed, %d failed\n' "${RELEASE:+ ($RELEASE)}" "$passed" "$failed"
    if [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]; then exit 0; fi
    exit 1
}
trap finish EXIT
trap 'log "interrupted"; failed=$((failed + 1)); finish' INT TERM

# ---------------------------------------------------------------------------
# Host preparation, the package, and one run of this script per release.

[ "$(id -u)" -eq 0 ] || { log "must run as root (debootstrap, systemd-nspawn, nsenter)"; failed=1; finish; }

if [ -z "$RELEASE" ]; then
    need=()
    command -v debootstrap >/dev/null || need+=(debootstrap)
    # The trixie keys: in bookworm's debian-archive-keyring.
    [ -f /usr/share/keyrings/debian-archive-trixie-stable.gpg ] || need+=(debian-archive-keyring)
    command -v systemd-nspawn >/dev/null || need+=(systemd-container)
    command -v nsenter >/dev/null || need+=(util-linux)
    command -v timeout >/dev/null || need+=(coreutils)
    command -v lintian >/dev/null || need+=(lintian)
    # cargo-deb computes the package's Depends with dpkg-shlibdeps.
    [ -n "${1:-}" ] || command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
    if [ ${#need[@]} -gt 0 ]; then
        log "installing ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        if ! { timeout 600 apt-get update -qq && timeout 900 apt-get install -y -qq "${need[@]}" >/dev/null; }; then
            die "apt-get install ${need[*]} failed"
        fi
    fi
    mkdir -p "$WORK"

    # The package.
    DEB=${1:-}
    if [ -z "$DEB" ]; then
        if ! cargo deb --version >/dev/null 2>&1; then
            log "installing cargo-deb"
            timeout 900 cargo install --locked cargo-deb >/dev/null 2>&1 || die "cargo install cargo-deb failed"
        fi
        log "building the package with cargo deb"
        rm -f "$WORK"/hostinfod_*.deb
        (cd "$REPO" && timeout 1800 cargo deb --target "$(rustc --print host-tuple)" --output "$WORK/") >"$WORK/cargo-deb.log" 2>&1 \
            || { cat "$WORK/cargo-deb.log" >&2; die "cargo deb failed"; }
        DEB=$(find "$WORK" -maxdepth 1 -name 'hostinfod_*.deb' | head -n 1)
    fi
    if [ -z "$DEB" ] || [ ! -f "$DEB" ]; then die "no package: ${DEB:-none built}"; fi
    DEB=$(cd "$(dirname "$DEB")" && pwd)/$(basename "$DEB")
    log "package: $DEB"

    # The package itself: lintian finds no error (warnings are shown).
    if out=$(timeout 600 lintian --fail-on error --tag-display-limit 0 "$DEB" 2>&1); then
        pass "lintian: no errors"
    else
        fail "lintian: no errors" "$out"
    fi
    printf '%s\n' "$out" | grep -E '^[EW]: ' | sed 's/^/    | /'

    for release in $RELEASES; do
        printf '\n=== Debian %s ===\n' "$release"
        start=$(date +%s)
        if bash "$0" --one "$release" "$DEB"; then
            pass "Debian $release: booted-systemd test ($(($(date +%s) - start)) s)"
        else
            fail "Debian $release: booted-systemd test ($(($(date +%s) - start)) s)"
        fi
    done
    printf '\n'
    finish
fi

DEB=${1:-}
[ -f "$DEB" ] || die "--one $RELEASE: no package at ${DEB:-(none given)}"
case $RELEASE in
bookworm | trixie) ;;
*) die "unknown release ${RELEASE:-(none)}: bookworm or trixie" ;;
esac

# The root file system: debootstrapped once, then copied for every run.
stamp="debootstrap --variant=minbase --include=$INCLUDE $RELEASE"
if [ ! -f "$CACHE/.hostinfod-test-root" ] || [ "$(cat "$CACHE/.hostinfod-test-root")" != "$stamp" ]; then
    log "debootstrap $RELEASE into $CACHE (once; a few minutes)"
    rm -rf "$CACHE" "$CACHE.tmp"
    mkdir -p "$(dirname "$CACHE")"
    timeout 1800 debootstrap --variant=minbase --include="$INCLUDE" \
        --keyring=/usr/share/keyrings/debian-archive-keyring.gpg "$RELEASE" "$CACHE.tmp" "$MIRROR" \
        >"$WORK/debootstrap-$RELEASE.log" 2>&1 || { tail -n 20 "$WORK/debootstrap-$RELEASE.log" >&2; die "debootstrap failed"; }
    # No getty on the container console: nothing reads it.
    ln -sf /dev/null "$CACHE.tmp/etc/systemd/system/console-getty.service"
    echo "$stamp" >"$CACHE.tmp/.hostinfod-test-root"
    mv "$CACHE.tmp" "$CACHE"
fi
rm -rf "$ROOT"
cp -a --reflink=auto "$CACHE" "$ROOT" || die "cannot copy $CACHE to $ROOT"
ln -sf "/usr/share/zoneinfo/$ZONE" "$ROOT/etc/localtime"
echo "$ZONE" >"$ROOT/etc/timezone"

# Boot it.
# --timezone=off: the container keeps its own zone, not the host's.
systemd-nspawn -D "$ROOT" --boot --register=no --keep-unit --private-network --timezone=off \
    --machine="$MACHINE" --console=read-only </dev/null >"$NSPAWN_LOG" 2>&1 &
NSPAWN_PID=$!
# The container's init is the child of systemd-nspawn that runs systemd (an
# intermediate child comes and goes first).
for _ in $(seq 1 100); do
    INIT_PID=$(ps -o pid=,comm= --ppid "$NSPAWN_PID" 2>/dev/null | awk '$2 == "systemd" { print $1; exit }')
    [ -n "$INIT_PID" ] && break
    kill -0 "$NSPAWN_PID" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$INIT_PID" ]; then
    tail -n 30 "$NSPAWN_LOG" >&2
    die "systemd-nspawn (pid $NSPAWN_PID) started no container init"
fi
state=
for _ in $(seq 1 120); do
    state=$(C systemctl is-system-running 2>/dev/null)
    case $state in running | degraded) break ;; esac
    sleep 0.5
done
case $state in
running | degraded) pass "container booted (systemd-nspawn pid $NSPAWN_PID, init pid $INIT_PID, state $state)" ;;
*)
    fail "container booted" "is-system-running: ${state:-no answer} after 60 s; $(tail -n 20 "$NSPAWN_LOG")"
    finish
    ;;
esac

# ---------------------------------------------------------------------------
# Helpers inside the container.

# session tcp|unix INPUT: one client session; prints what the server sent.
session() {
    local input=$2
    if [ "$1" = tcp ]; then
        printf '%b' "$input" | C timeout 15 nc -w 10 127.0.0.1 "$PORT"
    else
        printf '%b' "$input" | C timeout 15 nc -w 10 -U "$SOCK"
    fi
}
mainpid() { C systemctl show -P MainPID hostinfod.service; }
prop() { C systemctl show -P "$2" "$1"; }
# wait_for SECONDS COMMAND...: retry until the command succeeds.
wait_for() {
    local n=$(($1 * 5))
    shift
    for _ in $(seq 1 "$n"); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    "$@"
}
is_active() { [ "$(C systemctl is-active "$1")" = active ]; }
# Processes of a unit: the pids in its cgroup, in whatever hierarchy.
unit_pids() {
    local cg
    cg=$(C systemctl show -P ControlGroup "$1")
    [ -n "$cg" ] || return 0
    C sh -c 'for f in /sys/fs/cgroup/unified"$1"/cgroup.procs /sys/fs/cgroup"$1"/cgroup.procs /sys/fs/cgroup/systemd"$1"/cgroup.procs; do
                 [ -r "$f" ] && cat "$f"; done 2>/dev/null | sort -u' sh "$cg"
}
# Any process left running /usr/sbin/hostinfod, by /proc (no procps in the root).
hostinfod_pids() {
    C sh -c 'for p in /proc/[0-9]*; do
                 [ "$(readlink "$p/exe" 2>/dev/null)" = /usr/sbin/hostinfod ] && echo "${p#/proc/}"; done; true'
}
# no_process_left NAME: the unit's cgroup is empty and no hostinfod runs,
# within 5 s (a task still exiting can show in a v1 cgroup.procs as pid 0
# for a moment after the stop job is done).
nothing_left() { [ -z "$(unit_pids hostinfod.service; hostinfod_pids)" ]; }
no_process_left() {
    local left p
    wait_for 5 nothing_left >/dev/null 2>&1
    left=$(unit_pids hostinfod.service; hostinfod_pids)
    if [ -z "$left" ]; then
        pass "$1"
    else
        fail "$1" "$(for p in $(printf '%s\n' "$left" | sort -u); do
            printf '%s: %s\n' "$p" "$(C cat "/proc/$p/cmdline" 2>/dev/null | tr '\0' ' ')"; done)"
    fi
}
journal() { C journalctl -u hostinfod.service -u hostinfod.socket --no-pager -n "${1:-40}" -o short-monotonic; }
put_conf() { printf '%s\n' "$1" >"$ROOT$CONF"; }

HOST=$(C cat /proc/sys/kernel/hostname)
GREETING1="Welcome to hostinfod on $HOST; type help for command list."
GREETING2="hostinfod systemd test on $HOST, generation two"
COOKIE="hostinfod systemd test cookie: the sandbox can read fortunes."

# ---------------------------------------------------------------------------
# One process per connection: hostinfod-accept.socket (Accept=yes) starts
# hostinfod-accept@.service (hostinfod -i) for each client. A drop-in moves
# the socket to port $ACCEPT_PORT and a Unix socket of its own, so it runs
# beside whatever hostinfod.service and hostinfod.socket are doing.

ACCEPT_PORT=2346
ACCEPT_SOCK=/run/hostinfod-accept-test.sock
accept_units() {
    local dropin=$ROOT/etc/systemd/system/hostinfod-accept.socket.d out crlf n
    check "accept units pass systemd-analyze verify" \
        C systemd-analyze verify --man=no /usr/lib/systemd/system/hostinfod-accept.socket \
        /usr/lib/systemd/system/hostinfod-accept@.service
    check "hostinfod-accept.socket installed but not enabled" \
        test "$(C systemctl is-enabled hostinfod-accept.socket)" = disabled
    mkdir -p "$dropin"
    printf '[Socket]\nListenStream=\nListenStream=127.0.0.1:%s\nListenStream=%s\n' \
        "$ACCEPT_PORT" "$ACCEPT_SOCK" >"$dropin/test.conf"
    C systemctl daemon-reload
    check "systemctl start hostinfod-accept.socket (127.0.0.1:$ACCEPT_PORT, $ACCEPT_SOCK)" \
        C systemctl start hostinfod-accept.socket
    out=$(printf 'help\r\ndate\r\ncookie\r\nquit\r\n' | C timeout 15 nc -w 10 127.0.0.1 "$ACCEPT_PORT")
    crlf=$(printf '%s' "$out" | grep -c $'\r$')
    if printf '%s' "$out" | grep -qF "$GREETING1" &&
        printf '%s' "$out" | grep -qF 'Commands: quit date who cookie motd help' &&
        printf '%s' "$out" | grep -qF "$COOKIE" &&
        printf '%s' "$out" | grep -qF 'Goodbye.' && [ "$crlf" -ge 4 ]; then
        pass "TCP session through hostinfod-accept.socket (hostinfod -i, CRLF)"
    else
        fail "TCP session through hostinfod-accept.socket (hostinfod -i, CRLF)" \
            "$(printf '%s' "$out" | cat -A; C journalctl -u 'hostinfod-accept*' --no-pager -n 20)"
    fi
    out=$(printf 'help\nquit\n' | C timeout 15 nc -w 10 -U "$ACCEPT_SOCK")
    if printf '%s' "$out" | grep -qF 'Goodbye.' && ! printf '%s' "$out" | grep -q $'\r'; then
        pass "Unix socket session through hostinfod-accept.socket (LF)"
    else
        fail "Unix socket session through hostinfod-accept.socket (LF)" "$(printf '%s' "$out" | cat -A)"
    fi
    accept_log() { C journalctl -u 'hostinfod-accept@*' -t hostinfod --no-pager -q -o cat; }
    accept_logged() { accept_log | grep -q 'START: 127.0.0.1:' && accept_log | grep -q 'EXIT: pid=.* status=0 .*from 127.0.0.1'; }
    if wait_for 10 accept_logged; then
        pass "hostinfod -i logged START and EXIT (status=0) to the journal"
    else
        fail "hostinfod -i logged START and EXIT (status=0) to the journal" \
            "$(C journalctl -u 'hostinfod-accept*' --no-pager -q | tail -n 20)"
    fi
    accept_idle() { [ -z "$(C systemctl list-units 'hostinfod-accept@*' --state=active --no-legend --plain)" ]; }
    n=$(C systemctl show -P NAccepted hostinfod-accept.socket)
    if wait_for 10 accept_idle && [ "$n" = 2 ]; then
        pass "each connection was one hostinfod-accept@ instance, ended with its session (NAccepted=$n)"
    else
        fail "each connection was one hostinfod-accept@ instance, ended with its session" \
            "NAccepted=$n; $(C systemctl list-units 'hostinfod-accept@*' --all --no-legend --plain)"
    fi
    failed_units=$(C systemctl list-units 'hostinfod-accept@*' --state=failed --no-legend --plain)
    check "no failed hostinfod-accept@ instance" test -z "$failed_units"
    check "systemctl stop hostinfod-accept.socket" C systemctl stop hostinfod-accept.socket
    rm -rf "$dropin"
    C systemctl daemon-reload
}

# ---------------------------------------------------------------------------
# Install.

cp "$DEB" "$ROOT/root/hostinfod.deb" || die "cannot copy the package into the container"
# A fortune file of our own, so that "cookie" proves the sandbox reads it.
mkdir -p "$ROOT/usr/share/games/fortunes"
printf '%s\n%%\n' "$COOKIE" >"$ROOT/usr/share/games/fortunes/hostinfod-test"
printf 'hostinfod systemd test motd line\n' >"$ROOT/etc/motd"

if out=$(C dpkg -i /root/hostinfod.deb 2>&1); then
    pass "dpkg -i $(basename "$DEB")"
else
    fail "dpkg -i $(basename "$DEB")" "$out"
    finish
fi

check "hostinfod.service enabled by the package" test "$(C systemctl is-enabled hostinfod.service)" = enabled
check "hostinfod.socket installed but not enabled" test "$(C systemctl is-enabled hostinfod.socket)" = disabled
if wait_for 10 is_active hostinfod.service; then
    pass "systemctl is-active hostinfod: active"
else
    fail "systemctl is-active hostinfod: active" "$(C systemctl status hostinfod.service --no-pager; journal)"
fi
check "units pass systemd-analyze verify" \
    C systemd-analyze verify --man=no /usr/lib/systemd/system/hostinfod.service /usr/lib/systemd/system/hostinfod.socket
exposure=$(C systemd-analyze security hostinfod.service --no-pager 2>/dev/null \
    | sed -n 's/.*Overall exposure level for hostinfod.service: \([0-9.]*\).*/\1/p')
if [ -n "$exposure" ] && awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }'; then
    pass "systemd-analyze security exposure $exposure <= 2.0"
else
    fail "systemd-analyze security exposure <= 2.0" "exposure: ${exposure:-unknown}"
fi
uid=$(C sh -c 'stat -c %u "/proc/$(systemctl show -P MainPID hostinfod.service)"' 2>/dev/null)
huid=$(C getent passwd hostinfod | cut -d: -f3)
check "daemon runs as the system user hostinfod (uid ${uid:-?}, hostinfod is ${huid:-missing})" \
    test -n "$uid" -a "$uid" != 0 -a "$uid" = "$huid"
rdir=$(C stat -c '%F %U %a' /run/hostinfod)
check "/run/hostinfod is a directory of hostinfod, mode 755 ($rdir)" test "$rdir" = "directory hostinfod 755"

# ---------------------------------------------------------------------------
# Sessions.

out=$(session tcp 'help\r\ndate\r\nwho\r\nmotd\r\ncookie\r\nquit\r\n')
crlf=$(printf '%s' "$out" | grep -c $'\r$')
if printf '%s' "$out" | grep -qF "$GREETING1" &&
    printf '%s' "$out" | grep -qF 'Commands: quit date who cookie motd help' &&
    printf '%s' "$out" | grep -qE '(Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4}' &&
    printf '%s' "$out" | grep -qF 'hostinfod systemd test motd line' &&
    printf '%s' "$out" | grep -qF "$COOKIE" &&
    printf '%s' "$out" | grep -qF 'Goodbye.' && [ "$crlf" -ge 5 ]; then
    pass "TCP session: greeting, help, date, who, motd, cookie, quit (CRLF)"
else
    fail "TCP session: greeting, help, date, who, motd, cookie, quit (CRLF)" "$(printf '%s' "$out" | cat -A)"
fi

out=$(session unix 'help\nquit\n')
if printf '%s' "$out" | grep -qF "$GREETING1" && printf '%s' "$out" | grep -qF 'Goodbye.' &&
    ! printf '%s' "$out" | grep -q $'\r'; then
    pass "Unix socket session (LF)"
else
    fail "Unix socket session (LF)" "$(printf '%s' "$out" | cat -A)"
fi

mode=$(C stat -c %a "$SOCK")
check "socket file $SOCK has mode 666 (got $mode)" test "$mode" = 666
out=$(printf 'quit\n' | C setpriv --reuid=nobody --regid=nogroup --clear-groups timeout 15 nc -w 10 -U "$SOCK" 2>&1)
if printf '%s' "$out" | grep -qF 'Goodbye.'; then
    pass "Unix socket usable by user nobody"
else
    fail "Unix socket usable by user nobody" "$out"
fi
out=$(C hostinfod -s status 2>&1)
if printf '%s' "$out" | grep -q "$(mainpid)"; then
    pass "hostinfod -s status as root finds the service's daemon"
else
    fail "hostinfod -s status as root finds the service's daemon" "$out"
fi
warnings=$(C journalctl -t hostinfod -p warning --no-pager -q -o cat)
check "no warnings in the journal so far" test -z "$warnings"
[ -z "$warnings" ] || printf '%s\n' "$warnings" | sed 's/^/    | /'

# ---------------------------------------------------------------------------
# who: a real SSH login, held open, compared with who(1).

# who_lines: hostinfod's reply to `who` over TCP, line ends and prompts removed.
who_lines() {
    session tcp 'who\r\nquit\r\n' | tr -d '\r' | sed '1d; s/^\(Command? \)*//; /^Goodbye\.$/d'
}
# compare_who NAME: who(1) in the container and hostinfod's `who` are the
# same lines, and the test user is among them; both shown side by side.
compare_who() {
    local sys hi err
    err=$WORK/who-stderr-$RELEASE
    sys=$(C who 2>"$err")
    hi=$(who_lines)
    if [ "$sys" = "$hi" ] && printf '%s\n' "$sys" | grep -q "^$WHO_USER "; then
        pass "$1"
    else
        fail "$1"
    fi
    printf '%s\n' "$sys" | sed 's/^/    who(1):    /'
    printf '%s\n' "$hi" | sed 's/^/    hostinfod: /'
    # sd-login's complaints (a file it refuses), once each.
    sort -u "$err" | sed 's/^/    who(1) stderr: /'
}
who_shows_user() { C who | grep -q "^$WHO_USER "; }
# The login is complete once its pty is known: sshd opens the session
# (utmp entry, logind session) before it allocates the pty.
who_shows_login() { C who | grep -q "^$WHO_USER .*pts/"; }

# Where who(1) reads: bookworm keeps utmp, trixie has none (systemd 257 is
# built without it, and who(1) asks systemd-logind), so hostinfod's
# who_source = "auto" reads utmp on one and logind on the other.
if [ "$RELEASE" = trixie ]; then
    check "no utmp on $RELEASE: who(1) and hostinfod read systemd-logind" C test ! -e /run/utmp
else
    check "utmp on $RELEASE: who(1) and hostinfod read /run/utmp" C test -f /run/utmp
fi

# The test user, with a key of its own; root's client uses it.
if out=$(C sh -c 'set -e
        useradd --create-home --shell /bin/sh "$1"
        mkdir -p -m 700 /root/.ssh "/home/$1/.ssh"
        ssh-keygen -q -t ed25519 -N "" -C "hostinfod test" -f /root/.ssh/hostinfod-who
        cp /root/.ssh/hostinfod-who.pub "/home/$1/.ssh/authorized_keys"
        chown -R "$1:$1" "/home/$1/.ssh"
        chmod 600 "/home/$1/.ssh/authorized_keys"' sh "$WHO_USER" 2>&1); then
    pass "test user $WHO_USER with an SSH key"
else
    fail "test user $WHO_USER with an SSH key" "$out"
fi
C systemctl start ssh.service >/dev/null 2>&1
sshd_up() { C nc -z -w 2 127.0.0.1 22; }
check "sshd listens on 127.0.0.1:22" wait_for 15 sshd_up
# The login: key-based, non-interactive, a pty forced (-tt) so that it is a
# terminal login as who(1) shows them, over the container's loopback; held
# open by a remote sleep, its input a local sleep that never writes.
C sh -c '(sh -c "echo \$\$ >/root/ssh-feed.pid; exec sleep 300" |
          ssh -tt -i /root/.ssh/hostinfod-who -o BatchMode=yes -o StrictHostKeyChecking=no \
              -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10 -o LogLevel=ERROR \
              "$1@127.0.0.1" "sleep 240" >/root/ssh.out 2>&1 &
          echo $! >/root/ssh.pid) </dev/null >/dev/null 2>&1' sh "$WHO_USER"
if wait_for 20 who_shows_login; then
    pass "SSH login of $WHO_USER shows in who(1), with its pty"
else
    fail "SSH login of $WHO_USER shows in who(1), with its pty" "who: $(C who)
ssh: $(cat "$ROOT/root/ssh.out" 2>&1)
$(C journalctl -u ssh.service --no-pager -n 20 -o cat)"
fi
compare_who "hostinfod's who is who(1)'s, line for line (name, line, time, host)"

# On trixie, who(1) reads logind's files through sd-login: session files of
# our own (no leader, so no process check), in the shapes logind writes and
# in the quoting, numbers and garbage sd-login also accepts or refuses, must
# give hostinfod the lines who(1) prints. Not among them: greeter sessions,
# which who(1) 9.7 lists and hostinfod does not, and control characters,
# which hostinfod removes.
if [ "$RELEASE" = trixie ]; then
    # Written on the root file system, copied into the container's /run
    # (a tmpfs of its own, which hides the root's /run).
    sd=$ROOT/root/sessions
    rm -rf "$sd"
    mkdir -p "$sd"
    printf 'USER=carol\nCLASS=user\nTYPE=tty\nSEAT=seat0\nTTY=tty3\nREALTIME=1700000000123456\n' >"$sd/90"
    printf 'USER=dave\nCLASS=user\nTYPE=x11\nSEAT=seat0\nDISPLAY=:1\nREALTIME=1700000060000000\n' >"$sd/91"
    printf '# private\n  USER = "erin"  \nCLASS=user\nTYPE=tty\nTTY='"'"'pts/77'"'"'\nREMOTE_HOST="h\\"x\\\\y"\nREMOTE_USER=r\\ u\\\nser\nREALTIME=1700000300000000\n' >"$sd/92"
    printf 'USER=frank\nCLASS=user-early\nTYPE=web\nSERVICE=cockpit\nREALTIME=0x60A3F00000000\n' >"$sd/93"
    printf 'USER=gina\nCLASS=user\nTYPE=tty\nTTY=tty4\nREALTIME=soon\n' >"$sd/94"
    printf 'USER=hal\nCLASS=user\nTTY=tty5\nDESKTOP=\377\n' >"$sd/95"
    printf 'USER=ian\nCLASS=user\nTTY=tty6\n\000\n' >"$sd/96"
    printf 'USER=jo\nCLASS=manager\nTTY=tty7\n' >"$sd/97"
    printf 'USER=kim\nCLASS=user\nTYPE=tty\nTTY=tty8\nREALTIME=1700000000000000\nUSER=kay' >"$sd/98"
    printf 'USER=lee\nCLASS=user\nTYPE=tty\nTTY=tty9\nREALTIME=17000000000000' >"$sd/.#99tmp"
    C cp -a /root/sessions/. /run/systemd/sessions/
    n=$(C who 2>/dev/null | grep -c -e '^carol ' -e '^dave ' -e '^erin ' -e '^frank ' -e '^gina ' -e '^kay ')
    check "who(1) shows the 7 lines of the 6 hand-made user sessions (shows $n)" test "$n" = 7
    compare_who "hand-made session files: hostinfod's who is who(1)'s (quoting, numbers, garbage)"
    C sh -c 'cd /run/systemd/sessions && rm -f 90 91 92 93 94 95 96 97 98 .#99tmp'
fi

# ---------------------------------------------------------------------------
# Reload.

pid1=$(mainpid)
cp "$ROOT$CONF" "$WORK/hostinfod.toml.orig-$RELEASE"
put_conf "[protocol]
greeting = \"hostinfod systemd test on {hostname}, generation two\""
if out=$(C systemctl reload hostinfod.service 2>&1); then
    pass "systemctl reload with a new greeting succeeds"
else
    fail "systemctl reload with a new greeting succeeds" "$out
$(journal 20)"
fi
pid2=$(mainpid)
check "MainPID unchanged by the reload ($pid1 -> $pid2)" test "$pid1" = "$pid2" -a "$pid1" != 0
out=$(session tcp 'quit\r\n')
if printf '%s' "$out" | grep -qF "$GREETING2"; then
    pass "new greeting served after the reload"
else
    fail "new greeting served after the reload" "$out"
fi

compare_who "after the reload: hostinfod's who is still who(1)'s"

# Log out: the client ends (by the pid it was started with), the session
# goes, from who(1) and from hostinfod alike.
C sh -c 'kill "$(cat /root/ssh.pid)" "$(cat /root/ssh-feed.pid)"' 2>/dev/null
if wait_for 20 eval '! who_shows_user'; then
    pass "logout: $WHO_USER gone from who(1)"
else
    fail "logout: $WHO_USER gone from who(1)" "$(C who)"
fi
sys=$(C who) hi=$(who_lines)
check "logout: hostinfod's who agrees with who(1) ($(printf '%s' "$hi" | grep -c .) lines)" test "$sys" = "$hi"
C loginctl terminate-user "$WHO_USER" >/dev/null 2>&1
user_gone() { C userdel --remove "$WHO_USER" 2>/dev/null; ! C id "$WHO_USER" >/dev/null 2>&1; }
check "test user $WHO_USER removed" wait_for 10 user_gone

put_conf "[protocol]
greeting = \"this must never be served\"
no_such_key = 1"
if out=$(C systemctl reload hostinfod.service 2>&1); then
    fail "systemctl reload with a broken configuration fails" "it succeeded: $out"
else
    pass "systemctl reload with a broken configuration fails"
fi
check "service still active after the rejected reload" is_active hostinfod.service
pid3=$(mainpid)
check "MainPID unchanged by the rejected reload ($pid1 -> $pid3)" test "$pid1" = "$pid3"
out=$(session tcp 'quit\r\n')
if printf '%s' "$out" | grep -qF "$GREETING2"; then
    pass "old greeting still served after the rejected reload"
else
    fail "old greeting still served after the rejected reload" "$out"
fi

# A file that validates but that the daemon cannot apply (an address that is
# not local): the daemon itself rejects the reload, and says why.
put_conf "[listen]
tcp = [\"127.0.0.1:$PORT\", \"192.0.2.1:$PORT\"]

[protocol]
greeting = \"this must never be served either\""
if out=$(C systemctl reload hostinfod.service 2>&1); then
    fail "systemctl reload fails when the daemon rejects the new configuration" "it succeeded: $out"
else
    pass "systemctl reload fails when the daemon rejects the new configuration"
fi
why=$(C journalctl -u hostinfod.service --no-pager -q -o cat -n 20 | grep -F '192.0.2.1' | tail -n 1)
check "the daemon's reason is logged (${why:-nothing})" test -n "$why"
sub=$(prop hostinfod.service SubState)
check "service back to running after the rejected reload (SubState=$sub)" test "$sub" = running
out=$(session tcp 'quit\r\n')
m=$(mainpid 2>&1)
if [ "$m" = "$pid1" ] && printf '%s' "$out" | grep -qF "$GREETING2"; then
    pass "same MainPID and old greeting after the daemon rejected the reload"
else
    fail "same MainPID and old greeting after the daemon rejected the reload" "MainPID $pid1 -> $m (now $(mainpid)); $out"
fi

# A configuration error at start is exit 78: no restart loop.
put_conf "[protocol]
greeting = \"this must never be served\"
no_such_key = 1"
C systemctl restart hostinfod.service >/dev/null 2>&1
sleep 2
st=$(prop hostinfod.service ActiveState) code=$(prop hostinfod.service ExecMainStatus)
restarts=$(prop hostinfod.service NRestarts)
if [ "$st" = failed ] && [ "$code" = 78 ] && [ "$restarts" = 0 ]; then
    pass "start with a broken configuration: exit 78, failed, not restarted"
else
    fail "start with a broken configuration: exit 78, failed, not restarted" \
        "ActiveState=$st ExecMainStatus=$code NRestarts=$restarts"
fi

cp "$WORK/hostinfod.toml.orig-$RELEASE" "$ROOT$CONF"
C systemctl reset-failed hostinfod.service
check "service starts again with the original configuration" C systemctl start hostinfod.service

# Restart=on-failure: a daemon killed by SIGKILL comes back.
pid4=$(mainpid)
C sh -c 'kill -KILL "$1"' sh "$pid4"
restarted() { p=$(mainpid) && [ "$p" != 0 ] && [ "$p" != "$pid4" ] && is_active hostinfod.service; }
if wait_for 15 restarted; then
    pass "restarted after SIGKILL (MainPID $pid4 -> $(mainpid))"
else
    fail "restarted after SIGKILL" "$(C systemctl status hostinfod.service --no-pager)"
fi

# WatchdogSec=: the daemon keeps systemd's watchdog fed.
mkdir -p "$ROOT/etc/systemd/system/hostinfod.service.d"
printf '[Service]\nWatchdogSec=2s\n' >"$ROOT/etc/systemd/system/hostinfod.service.d/watchdog.conf"
C systemctl daemon-reload
C systemctl restart hostinfod.service
wpid=$(mainpid)
sleep 5
wres=$(prop hostinfod.service Result) wst=$(prop hostinfod.service ActiveState)
if [ "$wst" = active ] && [ "$(mainpid)" = "$wpid" ] && [ "$wres" = success ]; then
    pass "WatchdogSec=2s: still active with the same MainPID after 5 s"
else
    fail "WatchdogSec=2s: still active with the same MainPID after 5 s" \
        "ActiveState=$wst Result=$wres MainPID $wpid -> $(mainpid)"
fi
rm -f "$ROOT/etc/systemd/system/hostinfod.service.d/watchdog.conf"
C systemctl daemon-reload
C systemctl restart hostinfod.service

# ---------------------------------------------------------------------------
# Stop: a live session is told, and nothing is left in the cgroup.

cg=$(prop hostinfod.service ControlGroup)
C sh -c "(sleep 30 </dev/null | timeout 40 nc -U $SOCK >/root/idle.out 2>&1 &) >/dev/null 2>&1"
has_child() { [ "$(unit_pids hostinfod.service | wc -l)" -ge 2 ]; }
wait_for 10 has_child >/dev/null 2>&1
if out=$(C systemctl stop hostinfod.service 2>&1); then
    pass "systemctl stop hostinfod"
else
    fail "systemctl stop hostinfod" "$out"
fi
no_process_left "no process left in the cgroup ($cg) after stop"
idle_told() { grep -qF 'Server shutting down.' "$ROOT/root/idle.out"; }
if wait_for 10 idle_told; then
    pass "a session in progress was told \"Server shutting down.\""
else
    fail "a session in progress was told \"Server shutting down.\"" "$(cat -A "$ROOT/root/idle.out" 2>&1)"
fi
refused() { ! printf 'quit\r\n' | C timeout 5 nc -w 2 127.0.0.1 "$PORT" >/dev/null 2>&1; }
check "nothing listens on 127.0.0.1:$PORT after stop" refused

# ---------------------------------------------------------------------------
# Socket activation.

# The restarts above count against the unit's start rate limit (5 in 10 s),
# which the starts below would hit on a fast machine.
C systemctl reset-failed hostinfod.service hostinfod.socket >/dev/null 2>&1

check "systemctl start hostinfod.socket" C systemctl start hostinfod.socket
check "service not running before the first connection" test "$(C systemctl is-active hostinfod.service)" != active
out=$(session tcp 'quit\r\n')
if printf '%s' "$out" | grep -qF "$GREETING1"; then
    pass "first TCP connection starts the service and is served"
else
    fail "first TCP connection starts the service and is served" "$out
$(journal 20)"
fi
check "service active after socket activation" is_active hostinfod.service
out=$(session unix 'quit\n')
if printf '%s' "$out" | grep -qF "$GREETING1"; then
    pass "Unix socket of hostinfod.socket served"
else
    fail "Unix socket of hostinfod.socket served" "$out"
fi
apid=$(mainpid)
put_conf "[protocol]
greeting = \"hostinfod systemd test on {hostname}, generation two\""
check "systemctl reload of the socket-activated service" C systemctl reload hostinfod.service
out=$(session unix 'quit\n')
if [ "$(mainpid)" = "$apid" ] && printf '%s' "$out" | grep -qF "$GREETING2"; then
    pass "socket-activated reload: same MainPID, new greeting on the passed socket"
else
    fail "socket-activated reload: same MainPID, new greeting on the passed socket" "MainPID $apid -> $(mainpid); $out"
fi
cp "$WORK/hostinfod.toml.orig-$RELEASE" "$ROOT$CONF"
C systemctl stop hostinfod.service >/dev/null 2>&1
check "socket file kept when the activated service stops" C test -S "$SOCK"
out=$(session unix 'quit\n')
if printf '%s' "$out" | grep -qF "$GREETING1"; then
    pass "next connection on the Unix socket activates the service again"
else
    fail "next connection on the Unix socket activates the service again" "$out
$(journal 20)"
fi

cg=$(prop hostinfod.service ControlGroup)
check "systemctl stop hostinfod.socket hostinfod.service" C systemctl stop hostinfod.socket hostinfod.service
no_process_left "no process left in the cgroup (${cg:-gone}) after stop"

warnings=$(C journalctl -t hostinfod -p warning --no-pager -q -o cat | grep -v -e '192.0.2.1' -e 'no_such_key')
check "no unexpected warnings in the journal" test -z "$warnings"
[ -z "$warnings" ] || printf '%s\n' "$warnings" | sed 's/^/    | /'

accept_units

# ---------------------------------------------------------------------------
# Removal.

check "service active again before the upgrade" C systemctl start hostinfod.service
upid=$(mainpid)
if out=$(C dpkg -i /root/hostinfod.deb 2>&1); then
    pass "dpkg -i again (upgrade path)"
else
    fail "dpkg -i again (upgrade path)" "$out"
fi
npid=$(mainpid)
if is_active hostinfod.service && [ "$npid" != "$upid" ] && [ "$npid" != 0 ]; then
    pass "service restarted by the upgrade (MainPID $upid -> $npid)"
else
    fail "service restarted by the upgrade" "MainPID $upid -> $npid; $(C systemctl is-active hostinfod.service)"
fi
check "hostinfod.socket still disabled after the upgrade" test "$(C systemctl is-enabled hostinfod.socket)" = disabled
if out=$(C dpkg -r hostinfod 2>&1); then pass "dpkg -r hostinfod"; else fail "dpkg -r hostinfod" "$out"; fi
left=$(hostinfod_pids)
check "no hostinfod process after dpkg -r" test -z "$left"
check "unit files gone after dpkg -r" C test ! -e /usr/lib/systemd/system/hostinfod.service -a ! -e /usr/lib/systemd/system/hostinfod.socket
check "configuration kept after dpkg -r (conffile)" C test -f "$CONF"
if out=$(C dpkg -P hostinfod 2>&1); then pass "dpkg -P hostinfod"; else fail "dpkg -P hostinfod" "$out"; fi
check "configuration gone after dpkg -P" C test ! -e /etc/hostinfod

if [ "$failed" -gt 0 ]; then
    log "journal of hostinfod in the container:"
    journal 80 | sed 's/^/    | /' >&2
fi
finish
