import Foundation
import GatewayTestSupport
import OperationStore
import Testing

/// Async mode over gRPC, driven by grpcio with stubs generated from our protos (the interop client's
/// module is imported for its generated stubs and helpers).
@Suite("async operations over gRPC with a grpcio client")
struct AsyncGRPCTests {
    /// `scenario port [args]`: prints one JSON object.
    static let script = #"""
        import json, sys, time
        sys.path.insert(0, sys.argv[1])
        import grpc_client as gc
        import grpc
        from google.protobuf import json_format

        scenario, port, extra = sys.argv[2], sys.argv[3], sys.argv[4:]
        channel = grpc.insecure_channel("127.0.0.1:%s" % port)
        stub = gc.pipeline_grpc.PipelinePublicServiceStub(channel)
        pb = gc.pipeline_pb2

        def op_dict(op):
            out = {"name": op.name, "done": op.done}
            if op.HasField("metadata"):
                s = gc.struct_pb2.Struct()
                op.metadata.Unpack(s)
                out["metadata"] = json_format.MessageToDict(s)
            which = op.WhichOneof("result")
            if which == "error":
                out["error"] = {"code": op.error.code, "message": op.error.message}
            elif which == "response":
                r = pb.TriggerNamespacePipelineResponse()
                out["response_type"] = op.response.type_url
                op.response.Unpack(r)
                out["outputs"] = gc.outputs(r)
            return out

        def wait_done(name, timeout=30):
            end = time.time() + timeout
            while True:
                op = stub.GetOperation(pb.GetOperationRequest(operation_id=name.split("/", 1)[1])).operation
                if op.done or time.time() > end:
                    return op_dict(op)
                time.sleep(0.05)

        try:
            if scenario == "async":
                pipeline, variables = extra[0], json.loads(extra[1])
                req = pb.TriggerAsyncNamespacePipelineRequest(
                    namespace_id="demo", pipeline_id=pipeline,
                    data=[pb.TriggerData(variable=gc.struct(v)) for v in variables])
                accepted = stub.TriggerAsyncNamespacePipeline(req).operation
                out = {"accepted": op_dict(accepted), "final": wait_done(accepted.name)}
            elif scenario == "async-release":
                pipeline, release, variables = extra[0], extra[1], json.loads(extra[2])
                req = pb.TriggerAsyncNamespacePipelineReleaseRequest(
                    namespace_id="demo", pipeline_id=pipeline, release_id=release,
                    data=[pb.TriggerData(variable=gc.struct(v)) for v in variables])
                accepted = stub.TriggerAsyncNamespacePipelineRelease(req).operation
                out = {"accepted": op_dict(accepted), "final": wait_done(accepted.name)}
            elif scenario == "idempotent":
                req = pb.TriggerAsyncNamespacePipelineRequest(
                    namespace_id="demo", pipeline_id="echo", data=[pb.TriggerData(variable=gc.struct({"k": 1}))])
                md = [("idempotency-key", extra[0])]
                a = stub.TriggerAsyncNamespacePipeline(req, metadata=md).operation.name
                b = stub.TriggerAsyncNamespacePipeline(req, metadata=md).operation.name
                other = pb.TriggerAsyncNamespacePipelineRequest(
                    namespace_id="demo", pipeline_id="echo", data=[pb.TriggerData(variable=gc.struct({"k": 2}))])
                try:
                    stub.TriggerAsyncNamespacePipeline(other, metadata=md)
                    conflict = "OK"
                except grpc.RpcError as e:
                    conflict = e.code().name
                out = {"a": a, "b": b, "conflict": conflict}
            elif scenario == "unknown":
                # The same unknown pipeline, sync then async: each call's error.
                out = {}
                for kind, call, request in [
                        ("sync", stub.TriggerNamespacePipeline, pb.TriggerNamespacePipelineRequest),
                        ("async", stub.TriggerAsyncNamespacePipeline, pb.TriggerAsyncNamespacePipelineRequest)]:
                    try:
                        call(request(namespace_id="demo", pipeline_id=extra[0], data=[pb.TriggerData()]))
                        out[kind] = {"code": "OK"}
                    except grpc.RpcError as e:
                        out[kind] = gc.error(e)
            elif scenario == "get":
                out = op_dict(stub.GetOperation(pb.GetOperationRequest(operation_id=extra[0])).operation)
            else:
                raise SystemExit("unknown scenario " + scenario)
        except grpc.RpcError as e:
            out = gc.error(e)
        print(json.dumps(out))
        """#

    static func run(_ scenario: String, port: Int, _ arguments: [String] = []) async throws -> [String: Any] {
        let clients = Peers.repositoryRoot.appendingPathComponent("Tests/InteropClients").path
        let env = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
        let output = try await TestProcess.run(
            Peers.python, ["-c", script, clients, scenario, String(port)] + arguments, environment: env)
        guard output.status == 0,
            let object = try JSONSerialization.jsonObject(with: output.stdout) as? [String: Any]
        else {
            throw Peers.PeerError.failed(
                "async gRPC \(scenario) exited \(output.status): \(output.stderr)\(output.stdoutString)")
        }
        return object
    }

    @Test("TriggerAsyncNamespacePipeline answers a not-done operation; GetOperation returns the outputs in an Any")
    func triggerAsyncAndGet() async throws {
        try await withTestGateway { gateway in
            let answer = try await Self.run("async", port: gateway.port, ["upper", #"[{"p":"grpc async"}]"#])
            let accepted = try #require(answer["accepted"] as? [String: Any], "\(answer)")
            #expect((accepted["name"] as? String)?.hasPrefix("operations/") == true)
            #expect(accepted["done"] as? Bool == false)
            let final = try #require(answer["final"] as? [String: Any])
            #expect(final["done"] as? Bool == true, "\(final)")
            #expect(
                final["response_type"] as? String
                    == "type.googleapis.com/pipeline.pipeline.v1beta.TriggerNamespacePipelineResponse")
            #expect((final["outputs"] as? [[String: Any]])?.first?["p"] as? String == "GRPC ASYNC", "\(final)")
            #expect((final["metadata"] as? [String: Any])?["state"] as? String == "succeeded")
        }
    }

    @Test("the Release variant, and a failed operation's google.rpc error")
    func releaseAndFailure() async throws {
        try await withTestGateway(yaml: "store: {max_attempts: 1}\n") { gateway in
            var answer = try await Self.run("async-release", port: gateway.port, ["echo", "v2", #"[{"r":"x"}]"#])
            var final = try #require(answer["final"] as? [String: Any], "\(answer)")
            #expect((final["outputs"] as? [[String: Any]])?.first?["r"] as? String == "x", "\(final)")
            #expect((final["metadata"] as? [String: Any])?["release"] as? String == "v2")

            answer = try await Self.run("async", port: gateway.port, ["fail", #"[{"message":"grpc boom"}]"#])
            final = try #require(answer["final"] as? [String: Any], "\(answer)")
            #expect(final["done"] as? Bool == true)
            let error = try #require(final["error"] as? [String: Any], "\(final)")
            #expect(error["code"] as? Int == 13)
            #expect(error["message"] as? String == "grpc boom")
        }
    }

    @Test("a pipeline the runner lacks behind a * route: TriggerAsync refuses it with the sync call's NOT_FOUND")
    func unknownPipeline() async throws {
        try await withTestGateway { gateway in
            let answer = try await Self.run("unknown", port: gateway.port, ["nope"])
            let sync = try #require(answer["sync"] as? [String: Any], "\(answer)")
            #expect(sync["code"] as? String == "NOT_FOUND", "\(answer)")
            #expect((sync["details"] as? String)?.contains("not found in the demo runner") == true, "\(answer)")
            #expect(answer["async"] as? [String: String] == sync as? [String: String], "\(answer)")
            let page = try await gateway.store.list(filter: OperationFilter(), pageSize: 10, pageToken: nil)
            #expect(page.operations.isEmpty)
        }
    }

    @Test(
        "GetOperation of an unknown id is NOT_FOUND; idempotency-key metadata dedupes, another body is ALREADY_EXISTS")
    func notFoundAndIdempotency() async throws {
        try await withTestGateway { gateway in
            var answer = try await Self.run("get", port: gateway.port, ["00000000000000000000000000"])
            #expect(answer["code"] as? String == "NOT_FOUND", "\(answer)")
            answer = try await Self.run("idempotent", port: gateway.port, ["k-\(UUID().uuidString)"])
            #expect(answer["a"] as? String != nil && answer["a"] as? String == answer["b"] as? String, "\(answer)")
            #expect(answer["conflict"] as? String == "ALREADY_EXISTS", "\(answer)")
        }
    }
}
