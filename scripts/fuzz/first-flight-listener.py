"""Records a client's first flight on a fresh connection, for the fuzz corpus (record-nghttp.sh, record-http1.sh).

Usage: first-flight-listener.py PORT_FILE OUT_FILE
Listens on 127.0.0.1, an ephemeral port, written to PORT_FILE; accepts one connection (within 60 s), keeps what
the client sends for 1.5 s without ever answering, writes it to OUT_FILE and closes.
"""
import socket
import sys
import time

s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1)
s.settimeout(60)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
try:
    c, _ = s.accept()
except socket.timeout:
    sys.exit("no client connected within 60 s")
c.settimeout(0.5)
data = b""
end = time.time() + 1.5
while time.time() < end:
    try:
        chunk = c.recv(65536)
    except socket.timeout:
        continue
    if not chunk:
        break
    data += chunk
open(sys.argv[2], "wb").write(data)
