import Foundation
import GatewayTestSupport
import NIOCore
import Observability
import OperationStore
import Synchronization
import Testing
import TriggerModel

/// W3C trace context (issue 16 item 3): a client's `traceparent` continues through the gateway as a span of
/// its own; a request without one gets a trace the gateway starts. Asserted on what the backend received, over
/// both backend transports, and on the trace id the request's record (the access log) carries.
@Suite("Trace context: continued or started, on both backend transports")
struct TraceContextTests {
    /// Answers with the trace context it received, as the outputs of one item.
    struct TraceEchoRunner: TriggerRunner {
        func run(_ request: TriggerRequest) async throws -> TriggerResult {
            var out = ValueObject()
            out["traceparent"] = .string(request.traceParent ?? "none")
            out["tracestate"] = .string(request.traceState ?? "none")
            return TriggerResult(outputs: [out])
        }

        func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
            AsyncThrowingStream { $0.finish(throwing: GatewayError(.unimplemented, "not streamed here")) }
        }
    }

    static let clientTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let clientParent = "00-\(clientTraceID)-00f067aa0ba902b7-01"

    /// `00-<32 hex>-<16 hex>-<2 hex>`, ids not all zero: a traceparent a W3C parser accepts.
    static func isValid(_ value: String) -> Bool {
        let parts = value.split(separator: "-", omittingEmptySubsequences: false)
        let hex = { (part: Substring, count: Int) in
            part.count == count && part.allSatisfy { $0.isHexDigit && !$0.isUppercase } && part.contains { $0 != "0" }
        }
        return parts.count == 4 && parts[0] == "00" && hex(parts[1], 32) && hex(parts[2], 16) && parts[3].count == 2
    }

    @Test(
        "REST: the client's trace goes on as the gateway's span; none: the gateway starts one",
        arguments: ["http", "grpc"])
    func rest(transport: String) async throws {
        let observer = RecordingObserver()
        try await withGatewayOverBackend(TraceEchoRunner(), transport: transport, requestObservers: [observer]) {
            gateway in
            let client = try await gateway.client()
            defer { Task { await client.close() } }
            let body = ByteBuffer(string: #"{"data":[{"variable":{}}]}"#)
            let continued = try await client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger",
                headers: [
                    ("request-id", "trace-in-\(transport)"), ("traceparent", Self.clientParent),
                    ("tracestate", "vendor=a,other=b"),
                ],
                body: body)
            #expect(continued.status == 200, "\(continued.bodyString)")
            let received = try #require(try outputs(continued.body).first)
            let parent = try #require(received["traceparent"] as? String)
            #expect(Self.isValid(parent), "\(parent)")
            #expect(parent.hasPrefix("00-\(Self.clientTraceID)-"), "the trace id is kept: \(parent)")
            #expect(parent.hasSuffix("-01"), "the flags are kept: \(parent)")
            #expect(parent != Self.clientParent, "the gateway's own span is the backend's parent")
            #expect(received["tracestate"] as? String == "vendor=a,other=b")
            let record = try #require(try await observer.records(of: "trace-in-\(transport)").first)
            #expect(record.traceID.map(String.init) == Self.clientTraceID)

            for (id, header) in [("trace-none-\(transport)", nil), ("trace-bad-\(transport)", "00-zz-bad")] {
                let started = try await client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger",
                    headers: [("request-id", id), ("tracestate", "vendor=x")]
                        + (header.map { [("traceparent", $0)] } ?? []),
                    body: body)
                #expect(started.status == 200)
                let got = try #require(try outputs(started.body).first)
                let startedParent = try #require(got["traceparent"] as? String)
                #expect(Self.isValid(startedParent), "\(startedParent)")
                #expect(startedParent.hasSuffix("-01"), "a trace the gateway starts is sampled")
                // No valid traceparent: its tracestate is not passed on (W3C Trace Context §3.3).
                #expect(got["tracestate"] as? String == "none")
                let startedRecord = try #require(try await observer.records(of: id).first)
                let traceID = String(startedParent.dropFirst(3).prefix(32))
                #expect(startedRecord.traceID.map(String.init) == traceID, "the log names the trace the backend got")
                #expect(traceID != Self.clientTraceID)
            }
        }
    }

    @Test(
        "gRPC: a call without traceparent reaches the backend in a trace the gateway started",
        arguments: ["http", "grpc"])
    func grpc(transport: String) async throws {
        let observer = RecordingObserver()
        try await withGatewayOverBackend(TraceEchoRunner(), transport: transport, requestObservers: [observer]) {
            gateway in
            let started = try await GRPCSyncMetadataTests.call(
                port: gateway.port, headers: ["request-id: trace-grpc-\(transport)"])
            let record = try #require(try await observer.records(of: "trace-grpc-\(transport)").first)
            let traceID = try #require(record.traceID)
            #expect(started.contains("00-\(traceID)-"), "the backend got the logged trace: \(started)")
            let continued = try await GRPCSyncMetadataTests.call(
                port: gateway.port, headers: ["traceparent: \(Self.clientParent)"])
            #expect(continued.contains("00-\(Self.clientTraceID)-"), "\(continued)")
            #expect(!continued.contains(Self.clientParent), "\(continued)")
        }
    }

    @Test("gRPC: a request-id of 200 bytes is the call's id; one of 201 bytes is replaced by one of the gateway's")
    func grpcRequestIDLimit() async throws {
        let observer = RecordingObserver()
        try await withGatewayOverBackend(TraceEchoRunner(), transport: "http", requestObservers: [observer]) {
            gateway in
            let edge = String(repeating: "g", count: 200)
            _ = try await GRPCSyncMetadataTests.call(port: gateway.port, headers: ["request-id: \(edge)"])
            #expect(try await observer.records(of: edge).count == 1)
            let before = observer.all.count
            _ = try await GRPCSyncMetadataTests.call(port: gateway.port, headers: ["request-id: \(edge)g"])
            #expect(await eventually(within: .seconds(5)) { observer.all.count > before })
            #expect(!observer.all.contains { $0.requestID.hasPrefix("ggg") && $0.requestID.count > 200 })
            #expect(observer.all.last.map { $0.requestID.count == 32 } == true)
        }
    }

    @Test("Abacus runPipeline and Craft endpoint executions carry the gateway's span, or a trace it started")
    func surfaces() async throws {
        let yaml = """
            craft:
              deployments:
                - {name: traced, pipeline: echo, endpoint_url_path: traced}
            """
        try await withTestGateway(yaml: yaml) { gateway in
            let client = try await gateway.client()
            defer { Task { await client.close() } }
            for parent in [Self.clientParent, nil] {
                let headers = jsonHeaders + (parent.map { [("traceparent", $0), ("tracestate", "v=1")] } ?? [])
                let abacus = try await client.request(
                    "POST", "/api/v0/runPipeline", headers: headers,
                    body: ByteBuffer(string: #"{"pipelineId":"echo"}"#))
                #expect(abacus.status == 200, "\(abacus.bodyString)")
                let version = try #require(
                    (try json(abacus.body)["result"] as? [String: Any])?["pipelineVersion"] as? String)
                let craft = try await client.request(
                    "POST", "/endpoints/traced", headers: headers + [("authorization", "EndpointToken any")],
                    body: ByteBuffer(string: #"{"prompt":"hi"}"#))
                #expect(craft.status == 200, "\(craft.bodyString)")
                let execution = try #require(try json(craft.body)["execution_id"] as? String)
                for id in [version, execution] {
                    let stored = try #require(try await gateway.store.get(id: id)?.request)
                    let sent = try #require(stored.traceParent, "operation \(id) has no trace")
                    #expect(Self.isValid(sent), "\(sent)")
                    if let parent {
                        #expect(sent.hasPrefix("00-\(Self.clientTraceID)-") && sent != parent, "\(sent)")
                        #expect(stored.traceState == "v=1")
                    } else {
                        #expect(!sent.contains(Self.clientTraceID))
                        #expect(stored.traceState == nil)
                    }
                }
            }
        }
    }
}
