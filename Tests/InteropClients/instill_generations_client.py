#!/usr/bin/env python3
"""grpcio client of every Instill wire generation the gateway serves side by side, with stubs generated from
protos/ (the trimmed copies of instill-ai/protobufs) into a fresh directory on each run:

  vdp        vdp.pipeline.v1beta        (2024)  TriggerNamespacePipeline…  namespace_id=1 pipeline_id=2 inputs=3 data=4
  namespaced pipeline.pipeline.v1beta   (2025)  the same messages; what instill-sdk 0.18 speaks
  named      pipeline.v1beta            (2026)  TriggerPipeline…           name=1 inputs=2 data=3

Usage: instill_generations_client.py SCENARIO PORT [ARGS...]. TG_TOKEN is sent as `authorization: Bearer …`,
TG_REQUESTER_UID as `instill-requester-uid`. Prints one JSON object; gRPC errors are {"code", "details"}.

Scenarios:
  generation GEN       sync, release, stream, async + GetOperation, async release, on demo/echo and demo/tokens
  bad_name NAME        TriggerPipeline (named) with this resource name
  mgmt KIND ID         KIND: check (CheckNamespace), user (GetUser), organization (GetOrganization)
  get_pipeline GEN NS PIPE [RELEASE]   GetNamespacePipeline[Release] (vdp, namespaced), GetPipeline[Release] (named)
  list_releases GEN NS PIPE [PAGE_SIZE [PAGE_TOKEN [FILTER]]]
                       ListNamespacePipelineReleases (vdp, namespaced), ListPipelineReleases (named)
  trigger NS PIPE      TriggerNamespacePipeline (namespaced) with data [{"prompt": "hello"}]
  trigger_async NS PIPE   the same through TriggerAsyncNamespacePipeline, then GetOperation until done
  list_runs NS PIPE [PAGE [PAGE_SIZE [FILTER [ORDER_BY]]]]
                       ListPipelineRuns (namespaced), every field printed (enums by name)
"""
import json
import os
import shutil
import sys
import tempfile
import time

from grpc_tools import protoc
import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTOS = os.path.join(HERE, "..", "..", "protos")
SOURCES = [
    "pipeline/v1beta/pipeline_public_service.proto",
    "vdp/pipeline/v1beta/pipeline_public_service.proto",
    "pipeline/pipeline/v1beta/pipeline_public_service.proto",
    "core/mgmt/v1beta/mgmt_public_service.proto",
]


def generate():
    """Python stubs of the services above and what they import, in a directory of this run's own."""
    gen = tempfile.mkdtemp(prefix="tg-generations-")
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    args = ["protoc", "-I", PROTOS, "-I", include, "--python_out", gen, "--grpc_python_out", gen]
    imported = [
        "pipeline/v1beta/pipeline.proto", "vdp/pipeline/v1beta/pipeline.proto",
        "pipeline/pipeline/v1beta/pipeline.proto", "core/mgmt/v1beta/mgmt.proto",
        "common/healthcheck/v1beta/healthcheck.proto", "common/run/v1alpha/run.proto",
        "google/longrunning/operations.proto",
        "google/rpc/status.proto",
    ]
    if protoc.main(args + SOURCES + imported) != 0:
        shutil.rmtree(gen, ignore_errors=True)
        raise SystemExit("protoc failed")
    sys.path.insert(0, gen)
    return gen


# The generated modules are needed only until they are imported: the directory goes, whatever happens
# (generate() removes its own directory when protoc fails).
GEN = generate()
try:
    from google.protobuf import json_format, struct_pb2  # noqa: E402
    from core.mgmt.v1beta import mgmt_pb2, mgmt_public_service_pb2_grpc as mgmt_grpc  # noqa: E402
    from pipeline.pipeline.v1beta import pipeline_pb2 as namespaced_pb2  # noqa: E402
    from pipeline.pipeline.v1beta import pipeline_public_service_pb2_grpc as namespaced_grpc  # noqa: E402
    from pipeline.v1beta import pipeline_pb2 as named_pb2  # noqa: E402
    from pipeline.v1beta import pipeline_public_service_pb2_grpc as named_grpc  # noqa: E402
    from vdp.pipeline.v1beta import pipeline_pb2 as vdp_pb2  # noqa: E402
    from vdp.pipeline.v1beta import pipeline_public_service_pb2_grpc as vdp_grpc  # noqa: E402
finally:
    shutil.rmtree(GEN, ignore_errors=True)

MODULES = {"vdp": (vdp_pb2, vdp_grpc), "namespaced": (namespaced_pb2, namespaced_grpc), "named": (named_pb2, named_grpc)}


def error(e):
    return {"code": e.code().name, "details": e.details()}


def data(pb2, variables):
    out = []
    for v in variables:
        s = struct_pb2.Struct()
        s.update(v)
        out.append(pb2.TriggerData(variable=s))
    return out


def outputs(response):
    return [json_format.MessageToDict(o) for o in response.outputs]


class Generation:
    """The calls of one generation, each built with that generation's own messages."""

    def __init__(self, name, channel, metadata):
        self.name = name
        self.pb2, grpc_module = MODULES[name]
        self.stub = grpc_module.PipelinePublicServiceStub(channel)
        self.metadata = metadata

    def request(self, kind, pipeline, variables, release=None):
        pb2 = self.pb2
        items = data(pb2, variables)
        if self.name == "named":
            name = "namespaces/demo/pipelines/%s" % pipeline + ("/releases/%s" % release if release else "")
            message = {
                "sync": pb2.TriggerPipelineRequest, "stream": pb2.TriggerPipelineWithStreamRequest,
                "async": pb2.TriggerAsyncPipelineRequest, "release": pb2.TriggerPipelineReleaseRequest,
                "async_release": pb2.TriggerAsyncPipelineReleaseRequest,
            }[kind]
            return message(name=name, data=items)
        if release:
            message = {
                "release": pb2.TriggerNamespacePipelineReleaseRequest,
                "async_release": pb2.TriggerAsyncNamespacePipelineReleaseRequest,
            }[kind]
            return message(namespace_id="demo", pipeline_id=pipeline, release_id=release, data=items)
        message = {
            "sync": pb2.TriggerNamespacePipelineRequest, "stream": pb2.TriggerNamespacePipelineWithStreamRequest,
            "async": pb2.TriggerAsyncNamespacePipelineRequest,
        }[kind]
        return message(namespace_id="demo", pipeline_id=pipeline, data=items)

    def method(self, kind):
        named = self.name == "named"
        return getattr(self.stub, {
            "sync": "TriggerPipeline" if named else "TriggerNamespacePipeline",
            "stream": "TriggerPipelineWithStream" if named else "TriggerNamespacePipelineWithStream",
            "async": "TriggerAsyncPipeline" if named else "TriggerAsyncNamespacePipeline",
            "release": "TriggerPipelineRelease" if named else "TriggerNamespacePipelineRelease",
            "async_release": "TriggerAsyncPipelineRelease" if named else "TriggerAsyncNamespacePipelineRelease",
        }[kind])

    def response_class(self):
        return self.pb2.TriggerPipelineResponse if self.name == "named" else self.pb2.TriggerNamespacePipelineResponse

    def wait(self, operation_name):
        """GetOperation until done (bounded: 100 polls 50 ms apart); the outputs unpacked from the Any."""
        operation_id = operation_name.split("/", 1)[1]
        for _ in range(100):
            r = self.stub.GetOperation(self.pb2.GetOperationRequest(operation_id=operation_id), metadata=self.metadata)
            if r.operation.done:
                unpacked = self.response_class()()
                if not r.operation.response.Unpack(unpacked):
                    return {"type_url": r.operation.response.type_url}
                return {"type_url": r.operation.response.type_url, "outputs": outputs(unpacked)}
            time.sleep(0.05)
        return {"done": False}

    def all_calls(self):
        hello = [{"prompt": "hello world"}]
        out = {}
        out["sync"] = outputs(self.method("sync")(self.request("sync", "echo", hello), metadata=self.metadata))
        out["release"] = outputs(
            self.method("release")(self.request("release", "echo", [{"r": "v1"}], release="v1"), metadata=self.metadata))
        stream = self.method("stream")(self.request("stream", "tokens", [{"prompt": "a b c", "delay_ms": 1}]),
                                       metadata=self.metadata)
        out["stream"] = [outputs(message) for message in stream]
        started = self.method("async")(self.request("async", "echo", [{"prompt": "later"}]), metadata=self.metadata)
        out["async"] = {"name": started.operation.name, "done": started.operation.done}
        out["operation"] = self.wait(started.operation.name)
        started = self.method("async_release")(
            self.request("async_release", "echo", [{"r": "v2"}], release="v2"), metadata=self.metadata)
        out["async_release"] = self.wait(started.operation.name)
        return out


def main():
    scenario, port = sys.argv[1], sys.argv[2]
    extra = sys.argv[3:]
    channel = grpc.insecure_channel("127.0.0.1:%s" % port)
    metadata = []
    if os.environ.get("TG_TOKEN"):
        metadata.append(("authorization", "Bearer " + os.environ["TG_TOKEN"]))
    if os.environ.get("TG_REQUESTER_UID"):
        metadata.append(("instill-requester-uid", os.environ["TG_REQUESTER_UID"]))
    try:
        if scenario == "generation":
            out = Generation(extra[0], channel, metadata).all_calls()
        elif scenario == "bad_name":
            r = named_grpc.PipelinePublicServiceStub(channel).TriggerPipeline(
                named_pb2.TriggerPipelineRequest(name=extra[0], data=data(named_pb2, [{}])), metadata=metadata)
            out = {"outputs": outputs(r)}
        elif scenario == "mgmt":
            stub = mgmt_grpc.MgmtPublicServiceStub(channel)
            kind, ident = extra
            if kind == "check":
                r = stub.CheckNamespace(mgmt_pb2.CheckNamespaceRequest(id=ident), metadata=metadata)
                out = {"type": mgmt_pb2.CheckNamespaceResponse.Namespace.Name(r.type)}
            elif kind == "user":
                r = stub.GetUser(mgmt_pb2.GetUserRequest(user_id=ident, view=mgmt_pb2.VIEW_FULL), metadata=metadata)
                out = json_format.MessageToDict(r.user)
            else:
                r = stub.GetOrganization(
                    mgmt_pb2.GetOrganizationRequest(organization_id=ident, view=mgmt_pb2.VIEW_FULL), metadata=metadata)
                out = json_format.MessageToDict(r.organization)
        elif scenario == "get_pipeline":
            pb2, grpc_module = MODULES[extra[0]]
            stub = grpc_module.PipelinePublicServiceStub(channel)
            ns, pipe = extra[1], extra[2]
            if extra[0] == "named":
                name = "namespaces/%s/pipelines/%s" % (ns, pipe)
                if len(extra) > 3:
                    r = stub.GetPipelineRelease(
                        pb2.GetPipelineReleaseRequest(name=name + "/releases/" + extra[3]), metadata=metadata)
                else:
                    r = stub.GetPipeline(pb2.GetPipelineRequest(name=name), metadata=metadata)
            elif len(extra) > 3:
                r = stub.GetNamespacePipelineRelease(
                    pb2.GetNamespacePipelineReleaseRequest(namespace_id=ns, pipeline_id=pipe, release_id=extra[3]),
                    metadata=metadata)
            else:
                r = stub.GetNamespacePipeline(
                    pb2.GetNamespacePipelineRequest(namespace_id=ns, pipeline_id=pipe), metadata=metadata)
            out = json_format.MessageToDict(r)
        elif scenario == "list_releases":
            pb2, grpc_module = MODULES[extra[0]]
            stub = grpc_module.PipelinePublicServiceStub(channel)
            page = {"view": pb2.Pipeline.VIEW_RECIPE, "show_deleted": True}
            for key, value in zip(["page_size", "page_token", "filter"], extra[3:]):
                page[key] = int(value) if key == "page_size" else value
            if extra[0] == "named":
                parent = "namespaces/%s/pipelines/%s" % (extra[1], extra[2])
                r = stub.ListPipelineReleases(pb2.ListPipelineReleasesRequest(parent=parent, **page), metadata=metadata)
            else:
                r = stub.ListNamespacePipelineReleases(
                    pb2.ListNamespacePipelineReleasesRequest(namespace_id=extra[1], pipeline_id=extra[2], **page),
                    metadata=metadata)
            out = json_format.MessageToDict(r, always_print_fields_with_no_presence=True)
        elif scenario == "list_runs":
            stub = namespaced_grpc.PipelinePublicServiceStub(channel)
            query = {}
            for key, value in zip(["page", "page_size", "filter", "order_by"], extra[2:]):
                query[key] = int(value) if key in ("page", "page_size") else value
            r = stub.ListPipelineRuns(
                namespaced_pb2.ListPipelineRunsRequest(namespace_id=extra[0], pipeline_id=extra[1], **query),
                metadata=metadata)
            out = json_format.MessageToDict(r, always_print_fields_with_no_presence=True)
        elif scenario == "trigger":
            stub = namespaced_grpc.PipelinePublicServiceStub(channel)
            r = stub.TriggerNamespacePipeline(
                namespaced_pb2.TriggerNamespacePipelineRequest(
                    namespace_id=extra[0], pipeline_id=extra[1], data=data(namespaced_pb2, [{"prompt": "hello"}])),
                metadata=metadata)
            out = {"outputs": outputs(r)}
        elif scenario == "trigger_async":
            generation = Generation("namespaced", channel, metadata)
            started = generation.stub.TriggerAsyncNamespacePipeline(
                namespaced_pb2.TriggerAsyncNamespacePipelineRequest(
                    namespace_id=extra[0], pipeline_id=extra[1], data=data(namespaced_pb2, [{"prompt": "hello"}])),
                metadata=metadata)
            out = generation.wait(started.operation.name)
        else:
            raise SystemExit("unknown scenario " + scenario)
    except grpc.RpcError as e:
        out = error(e)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
