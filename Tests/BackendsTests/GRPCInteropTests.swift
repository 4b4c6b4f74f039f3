import Backends
import Foundation
import GatewayTestSupport
import NIOCore
import NIOPosix
import Testing
import TriggerModel

/// grpcio (Python) as an independent peer of the runner hop: its client against `DemoGRPCServer`, its server
/// against `GRPCBackendTransport`. Optional: runs when `TRIGGER_GRPC_PYTHON` names a Python with `grpcio` and
/// `grpcio-tools` (e.g. `python3 -m venv /tmp/venv-grpc && /tmp/venv-grpc/bin/pip install grpcio grpcio-tools`).
@Suite(
    "runner hop against grpcio (independent peer)",
    .enabled(if: GRPCInterop.python != nil, "TRIGGER_GRPC_PYTHON is not set"),
    .serialized
)
struct GRPCInteropTests {
    @Test("a grpcio client gets echo, metadata, statuses, the deadline, UNIMPLEMENTED and a stream right")
    func grpcioClientAgainstDemoServer() async throws {
        // A loop of its own, and the script's calls bounded by 30 s (`WAIT`; five of them fit the 180 s bound): this
        // grpcio client's first call got DEADLINE_EXCEEDED within its former 10 s twice in CI's parallel unit run
        // (2026-12-01, 2026-12-04), never alone nor beside busy processes. The test runner's pipelines run as tasks
        // of Swift's cooperative pool, and that run's start-up burst queues every suite's tests on that pool's two
        // threads: in the failing log hundreds of trivial tests finished ~14 s after they started, the window the
        // call fell in. The wire is what this test checks, not the pool's latency under that burst. Not ruled out
        // (the burst was read from the log, not reproduced): a stall of the demo server's window updates; one longer
        // than 30 s still fails here.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            try await withGRPCBackend(group: group) { backend in
                let (status, output) = try await GRPCInterop.run(
                    ["client", GRPCInterop.protoRoot, String(backend.port)], timeout: .seconds(180))
                #expect(status == 0, "\(output)")
                #expect(output.contains("client checks passed"), "\(output)")
                // Only a client that got as far as "slow" cancelled it (a failed one would leave 120 s of waiting).
                if status == 0 { #expect(await backend.probe.wait(for: "slow.cancelled")) }
            }
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try await group.shutdownGracefully()
    }

    @Test("the transport against a grpcio server: echo, metadata, status mapping, deadline, streaming")
    func transportAgainstGrpcioServer() async throws {
        let portFile = FileManager.default.temporaryDirectory.appendingPathComponent("grpcio-port-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: portFile) }
        let server = try GRPCInterop.start(["server", GRPCInterop.protoRoot, portFile])
        defer {
            server.terminate()
            GRPCInterop.removeDirectory(of: server)
        }
        let port = try await GRPCInterop.waitForPort(portFile, process: server)
        let transport = makeTransport(port: port)
        defer { transport.close() }

        let variables: ValueObject = [
            "s": .string("héllo ✓"),
            "b": .blob(Blob(contentType: "image/png", fileName: "x.png", bytes: ByteBuffer(bytes: Array(0...255)))),
        ]
        #expect(try await transport.run(makeRequest("echo", variables)).outputs == [variables])

        var meta = makeRequest("meta", deadline: .now() + .seconds(10))
        meta.principal = "carol"
        meta.idempotencyKey = "op-9"
        let out = try #require(try await transport.run(meta).outputs.first)
        #expect(out["principal"] == .string("carol"))
        #expect(out["request_id"] == .string("req-meta"))
        #expect(out["idempotency_key"] == .string("op-9"))
        #expect(out["has_timeout"] == .bool(true))

        let failure = await #expect(throws: GatewayError.self) { try await transport.run(makeRequest("fail")) }
        #expect(failure?.code == .notFound)
        #expect(failure?.message == "missing ✓ 100%")

        let late = await #expect(throws: GatewayError.self) {
            try await transport.run(makeRequest("slow", deadline: .now() + .milliseconds(300)))
        }
        #expect(late?.code == .deadlineExceeded)

        var events: [TriggerEvent] = []
        for try await event in transport.runStreaming(makeRequest("stream", mode: .stream)) { events.append(event) }
        #expect(events.count == 5)
        #expect(events.first == .status(name: "PIPELINE_STATUS_UPDATED", data: [:]))
        let outputs: [TriggerEvent] = [1, 2, 3].map {
            .output(name: "PIPELINE_OUTPUT_UPDATED", outputs: [["i": .number(Double($0))]])
        }
        #expect(Array(events.dropFirst().prefix(3)) == outputs)
        #expect(events.last == .end(TriggerResult(outputs: [["done": .bool(true)]])))
    }
}

/// Runs the embedded grpcio script.
enum GRPCInterop {
    static var python: String? {
        ProcessInfo.processInfo.environment["TRIGGER_GRPC_PYTHON"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// `protos/` of this package.
    static var protoRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("protos").path
    }

    static func start(_ arguments: [String]) throws -> Process {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("grpcio-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let scriptURL = directory.appendingPathComponent("runner_interop.py")
        try script.write(to: scriptURL, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python!)
        process.arguments = [scriptURL.path] + arguments
        let log = directory.appendingPathComponent("output.txt")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        do {
            try process.run()
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
        return process
    }

    /// Runs the script to its end (bounded); returns its exit status and output. Its directory is removed.
    static func run(_ arguments: [String], timeout: Duration = .seconds(60)) async throws -> (Int32, String) {
        let process = try start(arguments)
        defer { removeDirectory(of: process) }
        if await !eventually(within: timeout, { !process.isRunning }) { process.terminate() }
        // After SIGTERM the script's exit is what comes next; its status is read only once it has exited.
        _ = try await blocking { process.waitUntilExit() }
        let log = directory(of: process).appendingPathComponent("output.txt")
        return (process.terminationStatus, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
    }

    /// The directory `start` made for `process`: its script and its output.
    static func directory(of process: Process) -> URL {
        URL(fileURLWithPath: process.arguments![0]).deletingLastPathComponent()
    }

    /// Removes the directory `start` made for `process` (the script keeps running from memory if it still is).
    static func removeDirectory(of process: Process) {
        try? FileManager.default.removeItem(at: directory(of: process))
    }

    static func waitForPort(_ path: String, process: Process) async throws -> Int {
        var port: Int?
        _ = await eventually(within: .seconds(60)) {
            port = (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { Int($0) }
            return port != nil || !process.isRunning
        }
        guard let port else { throw GatewayError(.unavailable, "the grpcio server did not start") }
        return port
    }

    static let script = #"""
        """grpcio as an independent peer of trigger-gateway's runner hop (protos/trigger/runner/v1/runner.proto).

        client PROTO_ROOT PORT          calls a DemoGRPCServer serving the BackendsTests TestRunner; exits 0 when all checks pass
        server PROTO_ROOT PORT_FILE     serves Runner (echo, meta, fail, stream) and writes its port to PORT_FILE
        """
        import os
        import sys
        import time
        from concurrent import futures

        mode, proto_root, arg = sys.argv[1], sys.argv[2], sys.argv[3]
        # Beside this script, in the directory the test removes when it is done (the server is ended by SIGTERM,
        # which would skip any cleanup of its own).
        out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen")
        os.makedirs(out, exist_ok=True)
        from grpc_tools import protoc  # noqa: E402

        if protoc.main(["protoc", f"-I{proto_root}", f"--python_out={out}", f"--grpc_python_out={out}",
                        "trigger/runner/v1/runner.proto"]) != 0:
            sys.exit("protoc failed")
        sys.path.insert(0, out)
        import grpc  # noqa: E402
        from trigger.runner.v1 import runner_pb2 as pb  # noqa: E402
        from trigger.runner.v1 import runner_pb2_grpc as rpc  # noqa: E402


        def entry(key, **value):
            return pb.Entry(key=key, value=pb.Value(**value))


        def obj(*entries):
            return pb.Object(entries=list(entries))


        def field(o, key):
            for e in o.entries:
                if e.key == key:
                    return e.value
            raise KeyError(key)


        # The bound of every call whose deadline is not what it checks. The TestRunner behind DemoGRPCServer runs
        # each pipeline in a task of Swift's cooperative pool, which in the parallel unit run (every suite of every
        # test target in one process) is queued behind the start-up burst: CI's log of 2026-12-04 shows hundreds of
        # trivial tests finishing ~14 s after they started, and the echo call with a 10 s deadline failed inside
        # that window (twice in CI, never alone). A deadline the test checks is "slow"'s, below.
        WAIT = 30


        def client(port):
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            stub = rpc.RunnerStub(channel)
            blob = bytes(range(256)) * 4096
            variables = obj(entry("s", string_value="héllo ✓"),
                            entry("b", blob_value=pb.Blob(data=blob, content_type="application/x-test", file_name="f.bin")),
                            entry("n", number_value=7))
            resp = stub.Run(pb.RunRequest(namespace="test", pipeline="echo", inputs=[pb.Input(variables=variables)]),
                            timeout=WAIT)
            assert resp.outputs[0] == variables, "echo changed the variables"

            resp = stub.Run(pb.RunRequest(namespace="test", pipeline="meta", request_id="in-message"), timeout=WAIT,
                            metadata=[("x-trigger-principal", "bob"), ("request-id", "rid-py"), ("idempotency-key", "op-1"),
                                      ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")])
            out = resp.outputs[0]
            assert field(out, "principal").string_value == "bob", out
            assert field(out, "request_id").string_value == "rid-py", out
            assert field(out, "idempotency_key").string_value == "op-1", out
            assert field(out, "traceparent").string_value.startswith("00-0af7"), out
            assert 0 < field(out, "deadline_ms").number_value <= WAIT * 1000 + 1000, out

            try:
                stub.Run(pb.RunRequest(namespace="test", pipeline="fail", inputs=[pb.Input(variables=obj(
                    entry("code", number_value=3), entry("message", string_value="bad ✓ 100%")))]), timeout=WAIT)
                raise AssertionError("fail did not fail")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
                assert e.details() == "bad ✓ 100%", e.details()

            started = time.monotonic()
            try:
                stub.Run(pb.RunRequest(namespace="test", pipeline="slow"), timeout=0.3)
                raise AssertionError("slow did not time out")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e
                assert time.monotonic() - started < 3

            try:
                channel.unary_unary("/trigger.runner.v1.Runner/Nope")(b"", timeout=WAIT)
                raise AssertionError("unknown method answered")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.UNIMPLEMENTED, e

            events = list(stub.RunStream(pb.RunRequest(namespace="test", pipeline="stream", inputs=[pb.Input(
                variables=obj(entry("count", number_value=5), entry("size", number_value=10)))]), timeout=WAIT))
            kinds = [e.WhichOneof("event") for e in events]
            assert kinds == ["status"] + ["output"] * 5 + ["end"], kinds
            assert [field(e.output.outputs[0], "i").number_value for e in events[1:6]] == [1, 2, 3, 4, 5]
            print("client checks passed")


        class Runner(rpc.RunnerServicer):
            def Run(self, request, context):
                md = dict(context.invocation_metadata())
                if request.pipeline == "fail":
                    context.abort(grpc.StatusCode.NOT_FOUND, "missing ✓ 100%")
                if request.pipeline == "meta":
                    return pb.RunResponse(outputs=[obj(
                        entry("principal", string_value=md.get("x-trigger-principal", "")),
                        entry("request_id", string_value=md.get("request-id", "")),
                        entry("idempotency_key", string_value=md.get("idempotency-key", "")),
                        entry("has_timeout", bool_value=context.time_remaining() is not None))])
                if request.pipeline == "slow":
                    time.sleep(5)
                return pb.RunResponse(outputs=[i.variables for i in request.inputs])

            def RunStream(self, request, context):
                yield pb.RunEvent(status=pb.StatusEvent(name="PIPELINE_STATUS_UPDATED"))
                for i in range(1, 4):
                    yield pb.RunEvent(output=pb.OutputEvent(name="PIPELINE_OUTPUT_UPDATED",
                                                            outputs=[obj(entry("i", number_value=i))]))
                yield pb.RunEvent(end=pb.EndEvent(result=pb.RunResponse(outputs=[obj(entry("done", bool_value=True))])))


        def server(port_file):
            s = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
            rpc.add_RunnerServicer_to_server(Runner(), s)
            port = s.add_insecure_port("127.0.0.1:0")
            s.start()
            with open(port_file + ".tmp", "w") as f:
                f.write(str(port))
            os.rename(port_file + ".tmp", port_file)
            # `terminate()` (SIGTERM) ends it at once (grpcio's threads would otherwise keep it alive), and so does
            # the end of the test process (killed, or timed out, before its `terminate()`): no server outlives the run.
            import signal
            signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
            parent = os.getppid()
            while os.getppid() == parent:
                time.sleep(0.2)
            os._exit(0)


        if mode == "client":
            client(arg)
        else:
            server(arg)
        """#
}
