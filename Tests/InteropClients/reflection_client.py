#!/usr/bin/env python3
"""gRPC server reflection client for trigger-gateway tests: an independent peer (grpcio + protobuf), which knows
nothing of the gateway's protos beyond what reflection tells it.

Usage: reflection_client.py VERSION PORT  (VERSION: v1 or v1alpha; their messages are the same on the wire, so
the v1 classes generated from protos/grpc/reflection/v1/reflection.proto serve both). Prints one JSON object:
  services   list_services, on one call that then also asks for each service's file (requests sent one at a
             time, each answer read before the next request: grpcurl's pattern)
  trigger    TriggerNamespacePipeline on demo/upper, built from the reflected descriptors alone
  pipelined  how many of 1000 requests, all sent before any answer is read, came back answered in order
  not_found  the error code of an unknown symbol
  empty_request  the status of a call whose request sets none of the message_request fields
"""
import json
import os
import queue
import shutil
import sys
import tempfile

from grpc_tools import protoc
import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join(HERE, "..", "..", "protos", "grpc", "reflection", "v1", "reflection.proto")
GEN = tempfile.mkdtemp(prefix="tg-reflection-")


def generate():
    """Compiles reflection.proto under a package name of its own: grpc/… would shadow the grpcio package."""
    os.makedirs(os.path.join(GEN, "tgreflection"))
    shutil.copy(PROTO, os.path.join(GEN, "tgreflection", "reflection.proto"))
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    if protoc.main(["protoc", "-I", GEN, "-I", include, "--python_out", GEN, "tgreflection/reflection.proto"]) != 0:
        raise SystemExit("protoc failed")
    sys.path.insert(0, GEN)


# The generated module is needed only until it is imported: the directory goes, whatever happens.
try:
    generate()
    from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory  # noqa: E402
    from tgreflection import reflection_pb2  # noqa: E402
finally:
    shutil.rmtree(GEN, ignore_errors=True)


class Call:
    """One ServerReflectionInfo call: requests go in through a queue, answers are read one by one."""

    def __init__(self, channel, version):
        path = "/grpc.reflection.%s.ServerReflection/ServerReflectionInfo" % version
        method = channel.stream_stream(
            path,
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        self.requests = queue.Queue()
        self.responses = method(iter(self.requests.get, None), timeout=30)

    def send(self, **fields):
        self.requests.put(reflection_pb2.ServerReflectionRequest(host="tg", **fields))

    def ask(self, **fields):
        self.send(**fields)
        return next(self.responses)

    def close(self):
        """Half-closes and returns the number of answers still to come (0 when the call ended with OK)."""
        self.requests.put(None)
        return sum(1 for _ in self.responses)


PIPELINED = 1000


def main():
    version, port = sys.argv[1], sys.argv[2]
    channel = grpc.insecure_channel("127.0.0.1:%s" % port)
    out = {}
    call = Call(channel, version)
    listed = call.ask(list_services="")
    out["services"] = [s.name for s in listed.list_services_response.service]
    files = {}
    for service in out["services"]:
        answer = call.ask(file_containing_symbol=service)
        for raw in answer.file_descriptor_response.file_descriptor_proto:
            proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
            files[proto.name] = proto
    missing = call.ask(file_containing_symbol="pipeline.pipeline.v1beta.Nope")
    out["not_found"] = missing.error_response.error_code
    out["left_after_close"] = call.close()

    # A request that asks for nothing ends its call with INVALID_ARGUMENT, as in grpc-go.
    empty = Call(channel, version)
    try:
        empty.ask()
        out["empty_request"] = "OK"
    except grpc.RpcError as e:
        out["empty_request"] = e.code().name

    # A pool of the reflected files only, each added after its imports.
    pool = descriptor_pool.DescriptorPool()
    added = set()

    def add(name):
        if name in added:
            return
        for dependency in files[name].dependency:
            add(dependency)
        pool.Add(files[name])
        added.add(name)

    for name in files:
        add(name)
    service = pool.FindServiceByName("pipeline.pipeline.v1beta.PipelinePublicService")
    method = service.methods_by_name["TriggerNamespacePipeline"]
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    request = json_format.ParseDict(
        {"namespace_id": "demo", "pipeline_id": "upper", "data": [{"variable": {"prompt": "reflected"}}]},
        request_class(),
    )
    trigger = channel.unary_unary(
        "/%s/%s" % (service.full_name, method.name),
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    out["trigger"] = json_format.MessageToDict(trigger(request, timeout=30), preserving_proto_field_name=True)

    # Pipelined: every request out before any answer is read, on a channel whose receive window stays small (no
    # BDP probing, little lookahead). The answers (each file with its imports the first time, the file alone
    # after) then queue past the gateway's stream watermark, so it must pause, hold the requests unconsumed,
    # and resume as the answers are read.
    narrow = grpc.insecure_channel(
        "127.0.0.1:%s" % port, options=[("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)]
    )
    call = Call(narrow, version)
    symbols = ["pipeline.pipeline.v1beta.TriggerNamespacePipelineRequest", "google.protobuf.Struct",
               "google.longrunning.Operation"]
    for i in range(PIPELINED):
        call.send(file_containing_symbol=symbols[i % 3])
    in_order = 0
    for i in range(PIPELINED):
        answer = next(call.responses)
        first = descriptor_pb2.FileDescriptorProto.FromString(answer.file_descriptor_response.file_descriptor_proto[0])
        if answer.original_request.file_containing_symbol == symbols[i % 3] and first.name in files:
            in_order += 1
    out["pipelined"] = in_order
    call.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
