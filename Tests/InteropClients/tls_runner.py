#!/usr/bin/env python3
"""A grpcio runner served over TLS: the gateway's grpc pools with `tls:` against an independent peer.

Usage: tls_runner.py CERT KEY [CLIENT_CA]. Serves trigger.runner.v1.Runner/Run on 127.0.0.1 (an ephemeral
port) with grpc.ssl_server_credentials, then prints `listening on 127.0.0.1:PORT`. With CLIENT_CA, clients must
present a certificate signed by it (require_client_auth). Run echoes each input's variables with two entries
added: `principal` (the x-trigger-principal metadata) and `peer_cn` (the client certificate's common name as
grpcio's auth context saw it, "" without one). Ends on SIGTERM or when its parent process goes.
"""
import os
import shutil
import signal
import sys
import tempfile
import time
from concurrent import futures

from grpc_tools import protoc
import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTOS = os.path.join(HERE, "..", "..", "protos")
GEN = tempfile.mkdtemp(prefix="tg-tls-runner-")
# The generated modules are needed only until they are imported: the directory goes, whatever happens.
try:
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    if protoc.main(["protoc", "-I", PROTOS, "-I", include, "--python_out", GEN, "--grpc_python_out", GEN,
                    "trigger/runner/v1/runner.proto"]) != 0:
        raise SystemExit("protoc failed")
    sys.path.insert(0, GEN)
    from trigger.runner.v1 import runner_pb2 as pb  # noqa: E402
    from trigger.runner.v1 import runner_pb2_grpc as rpc  # noqa: E402
finally:
    shutil.rmtree(GEN, ignore_errors=True)


def entry(key, text):
    return pb.Entry(key=key, value=pb.Value(string_value=text))


class Runner(rpc.RunnerServicer):
    def Run(self, request, context):
        metadata = dict(context.invocation_metadata())
        auth = context.auth_context()
        common_name = b"".join(auth.get("x509_common_name", [])).decode()
        extra = [entry("principal", metadata.get("x-trigger-principal", "")), entry("peer_cn", common_name)]
        outputs = [pb.Object(entries=list(i.variables.entries) + extra) for i in request.inputs]
        return pb.RunResponse(outputs=outputs)


def main():
    cert, key = sys.argv[1], sys.argv[2]
    client_ca = sys.argv[3] if len(sys.argv) > 3 else None
    with open(cert, "rb") as f:
        chain = f.read()
    with open(key, "rb") as f:
        private_key = f.read()
    roots = None
    if client_ca:
        with open(client_ca, "rb") as f:
            roots = f.read()
    credentials = grpc.ssl_server_credentials(
        [(private_key, chain)], root_certificates=roots, require_client_auth=client_ca is not None
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    rpc.add_RunnerServicer_to_server(Runner(), server)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    print("listening on 127.0.0.1:%d" % port, flush=True)
    # grpcio's threads would keep the process alive: SIGTERM, or the parent going, ends it at once.
    # A parent that blocks SIGTERM in the spawning thread (posix_spawn keeps the mask) would make it inert here.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(0)


if __name__ == "__main__":
    main()
