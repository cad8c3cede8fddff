#!/usr/bin/env python3
"""A reload with N live sessions: every session must survive it and answer.

    bench/reload-scale.py [N] [BINARY]      # N = 10000, BINARY = target/release/hostinfod

Runs BINARY -f on a Unix socket in /tmp/r10k with limits raised to N, opens N
sessions (reading each greeting), rewrites the greeting and sends SIGHUP,
waits (bounded) for generation 1 in the status file, then sends `date` on
every session and counts those that do not answer. Needs RLIMIT_NOFILE and
the pid limit raised above N (as root the script raises its own NOFILE).
Signals only the daemon it started, by PID.
"""
import os, socket, subprocess, sys, time, signal, resource
N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
BIN = sys.argv[2] if len(sys.argv) > 2 else "target/" + subprocess.run(["rustc", "--print", "host-tuple"], capture_output=True, text=True).stdout.strip() + "/release/hostinfod"
d = "/tmp/r10k"; os.makedirs(d, exist_ok=True)
sock = f"{d}/h.sock"; pid = f"{d}/h.pid"; conf = f"{d}/h.toml"
def write(greet):
    open(conf, "w").write(f'''[listen]\ntcp = []\nunix = ["{sock}"]\nbacklog = 4096\n[daemon]\npid_file = "{pid}"\n[limits]\nmax_children = {N+100}\nmax_per_source = {N+100}\nidle_timeout_secs = 600\n[protocol]\ngreeting = "{greet}"\n[log]\nlevel = "warn"\n''')
write("G0")
resource.setrlimit(resource.RLIMIT_NOFILE, (N + 1000, N + 1000))
p = subprocess.Popen([BIN, "-f", "-c", conf])
for _ in range(100):
    if os.path.exists(sock): break
    time.sleep(0.05)
conns = []; t0 = time.time()
for i in range(N):
    s = socket.socket(socket.AF_UNIX); s.connect(sock); conns.append(s)
    if i % 500 == 499:
        # read greetings as we go, so the backlog never overflows
        for c in conns[i-499:i+1]:
            c.settimeout(30); buf = b""
            while b"Command? " not in buf: buf += c.recv(4096)
print(f"{N} sessions open in {time.time()-t0:.1f}s", flush=True)
write("G1")
t1 = time.time(); os.kill(p.pid, signal.SIGHUP)
ok = False
for _ in range(600):
    try:
        st = dict(l.split("=",1) for l in open(f"{d}/h.status").read().splitlines() if "=" in l)
        if st.get("generation") == "1": ok = True; break
        if st.get("last_reload_result") == "rejected": print("REJECTED", st.get("last_reload_error")); break
    except FileNotFoundError: pass
    time.sleep(0.05)
print(f"reload ok={ok} in {time.time()-t1:.2f}s; status last_reload_ms={st.get('last_reload_ms')}", flush=True)
failed = 0
for c in conns:
    try:
        c.sendall(b"date\n"); c.settimeout(10); buf = b""
        while b"Command? " not in buf:
            r = c.recv(4096)
            if not r: raise OSError("eof")
            buf += r
    except OSError: failed += 1
print(f"after reload: {N-failed} sessions answered, {failed} failed", flush=True)
s = socket.socket(socket.AF_UNIX); s.connect(sock); s.settimeout(10)
g = s.recv(4096); print("new greeting:", g.split(b"\n")[0].decode())
for c in conns: c.close()
p.send_signal(signal.SIGTERM); p.wait(timeout=60); print("daemon exit", p.returncode)
