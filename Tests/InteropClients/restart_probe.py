#!/usr/bin/env python3
"""Restarts a trigger-gateway on one loopback port while a client keeps connecting; prints one JSON summary.

usage: restart_probe.py MODE GATEWAY WORKDIR [--restarts N] [--client-threads T] [--socket-reuse-port]

MODE
  inherit    the probe binds 127.0.0.1:0 and listens, like a systemd .socket unit, and starts each gateway with
             that socket as descriptor 3 (LISTEN_FDS=1, LISTEN_PID=<the child's pid>, LISTEN_FDNAMES=gateway).
             A restart is: SIGTERM, wait for the exit, start the next one on the same socket. The gateway is also
             given `--listen 127.0.0.1:PORT`, the socket's address, so a gateway that ignores the inherited
             socket tries to bind a port the probe holds and fails.
  reuseport  each gateway binds `--listen 127.0.0.1:PORT --listen-reuse-port` itself; a restart is: start the
             next one, wait until it listens, then SIGTERM the old one (an overlapped restart).
             With --socket-reuse-port the probe's socket has SO_REUSEPORT set, as a socket unit's `ReusePort=yes`
             does; the summary's `socket_reuse_port` is the option as the probe reads it on its copy of the socket
             while the last gateway serves it (the gateways must leave the owner's options alone).
  rebind     each gateway binds `--listen 127.0.0.1:PORT`; a restart is: SIGTERM, wait for the exit, start the
             next one (what a same-host restart does without either feature).

Every gateway has its own data dir under WORKDIR (an overlapped restart cannot share one: the data dir is locked).
The client makes one HTTP/1.1 call per connection (`POST …/demo/pipelines/upper/trigger`, `Connection: close`)
in a loop, and counts each outcome: `ok` (200), other statuses, `refused` (ECONNREFUSED), `reset` (ECONNRESET),
`closed-unanswered` (the connection closed with no answer), `timeout` and other errors. Bounded: each connection has a 10 s timeout,
and the whole run lasts about (restarts + 1) × 1.5 s.
"""

import json
import os
import signal
import socket
import sys
import threading
import time
from collections import Counter

BODY = b'{"data":[{"variable":{"prompt":"restart"}}]}'
REQUEST = (
    b"POST /v1beta/namespaces/demo/pipelines/upper/trigger HTTP/1.1\r\nHost: gateway\r\n"
    b"Content-Type: application/json\r\nConnection: close\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)


class Gateway:
    """One gateway child: its pid, the files its stdout/stderr go to, the port it printed."""

    def __init__(self, gateway, workdir, index, args, inherited_fd=None):
        self.out_path = os.path.join(workdir, f"gw{index}.out")
        self.err_path = os.path.join(workdir, f"gw{index}.log")
        data_dir = os.path.join(workdir, f"data{index}")
        argv = [gateway, "serve", "--data-dir", data_dir] + args
        out = os.open(self.out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(self.err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        pid = os.fork()
        if pid == 0:
            try:
                os.dup2(out, 1)
                os.dup2(err, 2)
                env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
                if inherited_fd is not None:
                    # sd_listen_fds(3): the sockets from descriptor 3 on, for this pid only.
                    if inherited_fd != 3:
                        os.dup2(inherited_fd, 3)
                    os.set_inheritable(3, True)
                    env.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES="gateway")
                os.execve(gateway, argv, env)
            finally:
                os._exit(127)
        os.close(out)
        os.close(err)
        self.pid = pid
        self.status = None

    def wait_listening(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.out_path) as f:
                for line in f:
                    if line.startswith("listening on "):
                        return int(line.strip().rsplit(":", 1)[1])
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.status = os.waitstatus_to_exitcode(status)
                raise RuntimeError(f"gateway exited {self.status}: {open(self.err_path).read()[-2000:]}")
            time.sleep(0.01)
        raise RuntimeError("gateway did not print `listening on`")

    def stop(self, timeout=30):
        """SIGTERM, then wait for the exit (SIGKILL after `timeout`); returns the exit code."""
        if self.status is not None:
            return self.status
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.status = os.waitstatus_to_exitcode(status)
                return self.status
            time.sleep(0.01)
        os.kill(self.pid, signal.SIGKILL)
        _, status = os.waitpid(self.pid, 0)
        self.status = os.waitstatus_to_exitcode(status)
        return self.status


def call(port):
    """One connection, one call: the outcome's name and the seconds from connect to the answer's end."""
    started = time.monotonic()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(REQUEST)
        answer = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
        if not answer:
            return "closed-unanswered", time.monotonic() - started
        status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/1.1 ") else "garbled"
        if status == "200" and b"RESTART" not in answer:
            status = "200-wrong-body"
        return ("ok" if status == "200" else status), time.monotonic() - started
    except ConnectionRefusedError:
        return "refused", time.monotonic() - started
    except ConnectionResetError:
        return "reset", time.monotonic() - started
    except BrokenPipeError:
        return "reset-while-sending", time.monotonic() - started
    except socket.timeout:
        return "timeout", time.monotonic() - started
    except OSError as e:
        return f"error-{e.errno}", time.monotonic() - started
    finally:
        s.close()


def main():
    mode, gateway, workdir = sys.argv[1], sys.argv[2], sys.argv[3]
    restarts = int(sys.argv[sys.argv.index("--restarts") + 1]) if "--restarts" in sys.argv else 1
    threads = int(sys.argv[sys.argv.index("--client-threads") + 1]) if "--client-threads" in sys.argv else 2
    os.makedirs(workdir, exist_ok=True)
    listener = None
    if mode == "inherit":
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if "--socket-reuse-port" in sys.argv:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(4096)
        port = listener.getsockname()[1]
        start = lambda i: Gateway(gateway, workdir, i, ["--listen", f"127.0.0.1:{port}"], listener.fileno())
        current = start(0)
        printed = current.wait_listening()
    else:
        extra = ["--listen-reuse-port"] if mode == "reuseport" else []
        current = Gateway(gateway, workdir, 0, ["--listen", "127.0.0.1:0"] + extra)
        port = printed = current.wait_listening()
        start = lambda i: Gateway(gateway, workdir, i, ["--listen", f"127.0.0.1:{port}"] + extra)

    outcomes = Counter()
    t0 = time.monotonic()
    events = []
    slowest = [0.0]
    lock = threading.Lock()
    stop = threading.Event()

    def client():
        while not stop.is_set():
            outcome, took = call(port)
            with lock:
                outcomes[outcome] += 1
                if outcome != "ok" and len(events) < 50:
                    events.append([round(time.monotonic() - t0 - took, 3), outcome, round(took, 3)])
                slowest[0] = max(slowest[0], took)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for w in workers:
        w.start()
    gaps = []
    exits = []
    try:
        time.sleep(1.0)
        for i in range(1, restarts + 1):
            if mode == "reuseport":
                nxt = start(i)
                nxt.wait_listening()
                began = time.monotonic()
                exits.append(current.stop())
                gaps.append(0.0)
            else:
                began = time.monotonic()
                events.append([round(began - t0, 3), f"SIGTERM gw{i - 1}"])
                exits.append(current.stop())
                events.append([round(time.monotonic() - t0, 3), f"gw{i - 1} exited"])
                nxt = start(i)
                nxt.wait_listening()
                gaps.append(round(time.monotonic() - began, 3))
            current = nxt
            time.sleep(0.5)
        time.sleep(0.5)
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=30)
        # One socket, shared with the gateway: its options as the gateway left them.
        reuse_port = listener.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) if listener is not None else None
        exits.append(current.stop())
        if listener is not None:
            listener.close()
    print(
        json.dumps(
            {
                "mode": mode,
                "port": port,
                "printed_port": printed,
                "restarts": restarts,
                "outcomes": dict(outcomes),
                "calls": sum(outcomes.values()),
                "slowest_s": round(slowest[0], 3),
                "gaps_s": gaps,
                "exit_codes": exits,
                "socket_reuse_port": reuse_port,
                "events": events,
            }
        )
    )


if __name__ == "__main__":
    main()
