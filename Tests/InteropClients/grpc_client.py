#!/usr/bin/env python3
"""gRPC interop client for trigger-gateway tests: an independent peer (grpcio), stubs generated from protos/.

Usage: grpc_client.py SCENARIO PORT [ARGS...]. Prints one JSON object on stdout; exits 0 unless the
scenario itself could not run. gRPC errors are reported as {"code": "NAME", "details": "..."}.
TG_TLS_CA=<PEM file> makes the channel TLS, verifying the gateway against those roots; TG_TLS_CERT and
TG_TLS_KEY (PEM files) add a client certificate.
"""
import json
import os
import re
import sys
import tempfile

from grpc_tools import protoc
import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTOS = os.path.join(HERE, "..", "..", "protos")
GEN = os.path.join(tempfile.gettempdir(), "tg-grpc-gen-%d" % os.getuid())


def generate():
    """Compiles our .proto files into a private directory once (grpc_tools bundles google/protobuf)."""
    marker = os.path.join(GEN, ".done")
    sources = []
    for root, _, files in os.walk(PROTOS):
        for name in files:
            # grpc/health/v1 would shadow the grpcio package itself; health is called with raw bytes below.
            if name.endswith(".proto") and not root.startswith(os.path.join(PROTOS, "grpc")):
                sources.append(os.path.relpath(os.path.join(root, name), PROTOS))
    newest = max(os.path.getmtime(os.path.join(PROTOS, s)) for s in sources)
    if not os.path.exists(marker) or os.path.getmtime(marker) < newest:
        os.makedirs(GEN, exist_ok=True)
        include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
        args = ["protoc", "-I", PROTOS, "-I", include, "--python_out", GEN, "--grpc_python_out", GEN] + sources
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        open(marker, "w").close()
    sys.path.insert(0, GEN)


generate()
from google.protobuf import json_format, struct_pb2  # noqa: E402
from pipeline.pipeline.v1beta import pipeline_public_service_pb2_grpc as pipeline_grpc  # noqa: E402
from pipeline.pipeline.v1beta import pipeline_pb2  # noqa: E402
from core.mgmt.v1beta import mgmt_public_service_pb2_grpc as mgmt_grpc  # noqa: E402
from core.mgmt.v1beta import mgmt_pb2  # noqa: E402

SDK_BYTES = bytes.fromhex(
    "0a036e733112057069706531221b0a190a170a0670726f6d7074120d1a0b68656c6c6f20776f726c64"
)


COMPRESSION = {"gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate}


def error(e):
    return {"code": e.code().name, "details": e.details()}


def struct(obj):
    s = struct_pb2.Struct()
    s.update(obj)
    return s


def outputs(response):
    return [json_format.MessageToDict(o) for o in response.outputs]


def trigger_request(ns, pipeline, variables, release=None):
    data = [pipeline_pb2.TriggerData(variable=struct(v)) for v in variables]
    if release is None:
        return pipeline_pb2.TriggerNamespacePipelineRequest(namespace_id=ns, pipeline_id=pipeline, data=data)
    return pipeline_pb2.TriggerNamespacePipelineReleaseRequest(
        namespace_id=ns, pipeline_id=pipeline, release_id=release, data=data
    )


def main():
    scenario, port = sys.argv[1], sys.argv[2]
    extra = sys.argv[3:]
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", 64 << 20)]
    ca = os.environ.get("TG_TLS_CA")
    if ca:
        # TLS with the given roots (ALPN h2 is grpcio's own).
        with open(ca, "rb") as f:
            roots = f.read()
        chain = key = None
        if os.environ.get("TG_TLS_CERT"):
            with open(os.environ["TG_TLS_CERT"], "rb") as f:
                chain = f.read()
            with open(os.environ["TG_TLS_KEY"], "rb") as f:
                key = f.read()
        credentials = grpc.ssl_channel_credentials(root_certificates=roots, private_key=key, certificate_chain=chain)
        channel = grpc.secure_channel("127.0.0.1:%s" % port, credentials, options=options)
    else:
        channel = grpc.insecure_channel("127.0.0.1:%s" % port, options=options)
    stub = pipeline_grpc.PipelinePublicServiceStub(channel)
    metadata = []
    token = os.environ.get("TG_TOKEN")
    if token:
        metadata.append(("authorization", "Bearer " + token))
    # A raw authorization value, sent as is (the Instill SDK's empty token is "Bearer " with the space).
    if "TG_AUTHORIZATION" in os.environ:
        metadata.append(("authorization", os.environ["TG_AUTHORIZATION"]))
    out = {}
    try:
        if scenario == "trigger":
            # Optional third argument: a deadline in seconds.
            pipeline, variables = extra[0], json.loads(extra[1])
            timeout = float(extra[2]) if len(extra) > 2 else None
            r = stub.TriggerNamespacePipeline(
                trigger_request("demo", pipeline, variables), metadata=metadata, timeout=timeout
            )
            out = {"outputs": outputs(r)}
        elif scenario == "release":
            pipeline, release, variables = extra[0], extra[1], json.loads(extra[2])
            r = stub.TriggerNamespacePipelineRelease(
                trigger_request("demo", pipeline, variables, release), metadata=metadata
            )
            out = {"outputs": outputs(r)}
        elif scenario == "blob":
            # A data URI string in a Struct becomes a binary on the gateway, as on REST.
            size = int(extra[0])
            payload = bytes((i * 7 + 3) % 256 for i in range(size))
            import base64
            import hashlib
            uri = "data:application/octet-stream;base64," + base64.b64encode(payload).decode()
            r = stub.TriggerNamespacePipeline(
                trigger_request("demo", "blob-info", [{"f": uri}]), metadata=metadata
            )
            out = {"outputs": outputs(r), "sha256": hashlib.sha256(payload).hexdigest()}
        elif scenario == "sdk-bytes":
            # The exact bytes the Instill Python SDK sends, through a raw (identity) serializer; or the request
            # given as hex (bytes protobuf's own serializer would not write, such as a string that is not UTF-8).
            call = channel.unary_unary(
                "/pipeline.pipeline.v1beta.PipelinePublicService/TriggerNamespacePipeline",
                request_serializer=lambda b: b,
                response_deserializer=lambda b: b,
            )
            raw = call(bytes.fromhex(extra[0]) if extra else SDK_BYTES, metadata=metadata)
            r = pipeline_pb2.TriggerNamespacePipelineResponse.FromString(raw)
            out = {"outputs": outputs(r)}
        elif scenario == "compressed":
            # A call whose messages are compressed (grpc-encoding gzip or deflate); grpcio reads a compressed
            # answer by itself.
            compression = COMPRESSION[extra[0]]
            variables = json.loads(extra[1])
            r = stub.TriggerNamespacePipeline(
                trigger_request("demo", "echo", variables), metadata=metadata, compression=compression
            )
            out = {"outputs": outputs(r)}
        elif scenario == "health":
            ready = stub.Readiness(pipeline_pb2.ReadinessRequest())
            mgmt = mgmt_grpc.MgmtPublicServiceStub(channel).Readiness(mgmt_pb2.ReadinessRequest())
            live = stub.Liveness(pipeline_pb2.LivenessRequest())
            raw_check = channel.unary_unary(
                "/grpc.health.v1.Health/Check", request_serializer=lambda b: b, response_deserializer=lambda b: b
            )(b"")
            # HealthCheckResponse { status = 1 (enum) }: b"\x08\x01" is SERVING.
            check_status = raw_check[1] if len(raw_check) == 2 and raw_check[0] == 0x08 else -1
            out = {
                "pipeline_readiness": ready.health_check_response.status,
                "mgmt_readiness": mgmt.health_check_response.status,
                "pipeline_liveness": live.health_check_response.status,
                "grpc_health": check_status,
            }
        elif scenario == "health-check":
            # grpc.health.v1.Health/Check for one service: {"status": N} or the gRPC error.
            service = extra[0].encode() if extra else b""
            request = (b"\x0a" + bytes([len(service)]) + service) if service else b""
            raw = channel.unary_unary(
                "/grpc.health.v1.Health/Check", request_serializer=lambda b: b, response_deserializer=lambda b: b
            )(request, timeout=10)
            out = {"status": raw[1] if len(raw) == 2 and raw[0] == 0x08 else 0}
        elif scenario == "health-watch":
            # grpc.health.v1.Health/Watch: collects statuses until COUNT arrived (then cancels) or the server
            # ends the call. After the first message, READY_FILE is created so the test knows the watch is on.
            service, count, ready_file = extra[0].encode(), int(extra[1]), extra[2]
            request = (b"\x0a" + bytes([len(service)]) + service) if service else b""
            call = channel.unary_stream(
                "/grpc.health.v1.Health/Watch", request_serializer=lambda b: b, response_deserializer=lambda b: b
            )(request, timeout=float(extra[3]) if len(extra) > 3 else 60)
            statuses = []
            out = {}
            try:
                for raw in call:
                    statuses.append(raw[1] if len(raw) == 2 and raw[0] == 0x08 else 0)
                    if len(statuses) == 1:
                        open(ready_file, "w").close()
                    if len(statuses) >= count:
                        call.cancel()
                        break
                out["code"] = "OK" if len(statuses) < count else "STOPPED"
            except grpc.RpcError as e:
                out.update(error(e))
            out["statuses"] = statuses
        elif scenario == "unknown":
            call = channel.unary_unary(
                "/pipeline.pipeline.v1beta.PipelinePublicService/NoSuchMethod",
                request_serializer=lambda b: b,
                response_deserializer=lambda b: b,
            )
            call(b"", metadata=metadata)
        elif scenario == "deadline":
            stub.TriggerNamespacePipeline(
                trigger_request("demo", "sleep", [{"ms": 60000}]), metadata=metadata, timeout=float(extra[0])
            )
        elif scenario == "metadata-sized":
            # An echo call carrying N bytes of custom metadata (one x-padding value), to probe the header cap.
            padding = [("x-padding", "p" * int(extra[0]))]
            r = stub.TriggerNamespacePipeline(trigger_request("demo", "echo", [{"k": 1}]), metadata=metadata + padding)
            out = {"outputs": outputs(r)}
        elif scenario == "metadata-edge":
            # The header block at exactly LIMIT bytes (RFC 9113 §6.5.2 count), then one byte more: one x-padding
            # value sized from the gateway's own count of a first, over-limit call ("(SIZE vs. LIMIT)").
            limit = int(extra[0])

            def call(n):
                try:
                    request = trigger_request("demo", "echo", [{"k": 1}])
                    stub.TriggerNamespacePipeline(request, metadata=metadata + [("x-padding", "p" * n)])
                    return {"code": "OK"}
                except grpc.RpcError as e:
                    return error(e)

            probe = call(limit)
            size = int(re.search(r"\((\d+) vs\. ", probe["details"]).group(1))
            at = limit - (size - limit)
            out = {"probe": probe, "at": call(at), "past": call(at + 1)}
        elif scenario == "metadata-split":
            # TOTAL bytes of metadata values in fields of at most FIELD bytes (grpcio sends them raw, not Huffman
            # coded), then a plain call on the same channel.
            total, field = int(extra[0]), int(extra[1])
            padding = [("x-pad-%d" % i, "p" * min(field, total - i)) for i in range(0, total, field)]
            out = {}
            try:
                stub.TriggerNamespacePipeline(trigger_request("demo", "echo", [{"k": 1}]), metadata=metadata + padding)
                out["first"] = {"code": "OK"}
            except grpc.RpcError as e:
                out["first"] = error(e)
            r = stub.TriggerNamespacePipeline(trigger_request("demo", "echo", [{"k": 2}]), metadata=metadata)
            out["then"] = outputs(r)
        elif scenario == "wide":
            # A variable of N struct fields ("keys") or one field holding a list of N - 1 values ("list"): N
            # members toward limits.max_json_members. Answers the output's field count (or list length).
            kind, n = extra[0], int(extra[1])
            variable = {"k%d" % i: 0 for i in range(n)} if kind == "keys" else {"v": [0] * (n - 1)}
            r = stub.TriggerNamespacePipeline(trigger_request("demo", "echo", [variable]), metadata=metadata)
            o = r.outputs[0]
            out = {"members": len(o.fields) if kind == "keys" else len(o.fields["v"].list_value.values) + 1}
        elif scenario == "sized":
            # A valid request of exactly N serialized bytes (padding in a string), to probe the size cap.
            target = int(extra[0])
            k = max(target - 64, 0)
            while True:
                req = trigger_request("demo", "blob-info", [{"s": "a" * k}])
                size = req.ByteSize()
                if size == target:
                    break
                k += target - size
                if k < 0:
                    raise SystemExit("cannot build a request of %d bytes" % target)
            compression = COMPRESSION[extra[1]] if len(extra) > 1 else None
            r = stub.TriggerNamespacePipeline(req, metadata=metadata, compression=compression)
            out = {"outputs": outputs(r), "size": target}
        elif scenario == "stream":
            words = extra[0]
            responses = stub.TriggerNamespacePipelineWithStream(
                trigger_request("demo", "tokens", [{"prompt": words, "delay_ms": 1}]), metadata=metadata
            )
            out = {"messages": [outputs(r) for r in responses]}
        elif scenario == "stream-run":
            # Any pipeline, streamed to the end (or to its error); optional deadline in seconds. Times are
            # wall-clock seconds, comparable with the test process's clock.
            import time
            pipeline, variables = extra[0], json.loads(extra[1])
            timeout = float(extra[2]) if len(extra) > 2 else None
            responses = stub.TriggerNamespacePipelineWithStream(
                trigger_request("demo", pipeline, variables), metadata=metadata, timeout=timeout
            )
            messages, times = [], []
            out = {}
            # TG_PROGRESS_FILE: one line per message as it arrives, so a test can act once the stream flows.
            progress = os.environ.get("TG_PROGRESS_FILE")
            try:
                for r in responses:
                    messages.append(outputs(r))
                    times.append(time.time())
                    if progress:
                        with open(progress, "a") as f:
                            f.write("message\n")
                out["code"] = "OK"
            except grpc.RpcError as e:
                out.update(error(e))
            out.update({"messages": messages, "times": times, "ended": time.time()})
        elif scenario == "stream-first-cancel":
            # Reads one message, then hangs up on the call (grpcio sends RST_STREAM CANCEL).
            import time
            pipeline, variables = extra[0], json.loads(extra[1])
            responses = stub.TriggerNamespacePipelineWithStream(
                trigger_request("demo", pipeline, variables), metadata=metadata
            )
            first = outputs(next(responses))
            responses.cancel()
            out = {"first": first, "cancelled_at": time.time()}
        elif scenario == "many":
            # Concurrent calls multiplexed on one HTTP/2 connection.
            count = int(extra[0])
            futures = [
                stub.TriggerNamespacePipeline.future(trigger_request("demo", "upper", [{"i": str(i)}]), metadata=metadata)
                for i in range(count)
            ]
            out = {"outputs": [outputs(f.result())[0]["i"] for f in futures]}
        elif scenario == "many-sized":
            # COUNT concurrent calls of about SIZE bytes each, multiplexed on one HTTP/2 connection: their codes.
            count, size = int(extra[0]), int(extra[1])
            req = trigger_request("demo", "blob-info", [{"s": "a" * size}])
            futures = [stub.TriggerNamespacePipeline.future(req, metadata=metadata) for _ in range(count)]
            out = {"codes": [f.code().name for f in futures]}
        elif scenario == "repeat":
            # COUNT unary calls on one connection, BATCH at a time (the per-call memory test): how many were OK.
            count, batch = int(extra[0]), int(extra[1]) if len(extra) > 1 else 32
            ok = 0
            for start in range(0, count, batch):
                futures = [
                    stub.TriggerNamespacePipeline.future(trigger_request("demo", "upper", [{"i": str(i)}]), metadata=metadata)
                    for i in range(start, min(start + batch, count))
                ]
                ok += sum(1 for f in futures if outputs(f.result())[0]["i"] is not None)
            out = {"ok": ok}
        elif scenario == "repeat-expiring":
            # COUNT unary calls of `sleep` (200 ms) routed to a pool whose request_timeout is far shorter, BATCH at a
            # time (the per-call memory test's failing row): how many ended DEADLINE_EXCEEDED.
            count, batch = int(extra[0]), int(extra[1]) if len(extra) > 1 else 32
            expired = 0
            for start in range(0, count, batch):
                futures = [
                    stub.TriggerNamespacePipeline.future(trigger_request("expiring", "sleep", [{"ms": 200}]), metadata=metadata)
                    for _ in range(start, min(start + batch, count))
                ]
                for f in futures:
                    try:
                        f.result()
                    except grpc.RpcError as e:
                        expired += 1 if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED else 0
            out = {"expired": expired}
        elif scenario == "repeat-stream":
            # COUNT server-streaming calls of `upper` on one connection, one at a time: how many ended with output.
            count = int(extra[0])
            ok = 0
            for i in range(count):
                responses = list(
                    stub.TriggerNamespacePipelineWithStream(trigger_request("demo", "upper", [{"i": str(i)}]), metadata=metadata)
                )
                ok += 1 if responses else 0
            out = {"ok": ok}
        elif scenario == "mixed":
            # One malformed request and good ones on the same connection: the error stays on its stream.
            raw = channel.unary_unary(
                "/pipeline.pipeline.v1beta.PipelinePublicService/TriggerNamespacePipeline",
                request_serializer=lambda b: b,
                response_deserializer=lambda b: b,
            )
            bad = raw.future(b"\xff\xff\xff\xff", metadata=metadata)
            good = [
                stub.TriggerNamespacePipeline.future(trigger_request("demo", "upper", [{"i": "x%d" % i}]), metadata=metadata)
                for i in range(5)
            ]
            try:
                bad.result()
                bad_out = {"code": "OK"}
            except grpc.RpcError as e:
                bad_out = error(e)
            out = {"bad": bad_out, "good": [outputs(f.result())[0]["i"] for f in good]}
        elif scenario == "get-operation":
            # GetOperation of the id given: its name and whether it is done, or the error.
            op = stub.GetOperation(pipeline_pb2.GetOperationRequest(operation_id=extra[0]), metadata=metadata).operation
            out = {"name": op.name, "done": op.done}
        else:
            raise SystemExit("unknown scenario " + scenario)
    except grpc.RpcError as e:
        out = error(e)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
