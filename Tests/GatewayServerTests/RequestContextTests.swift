@testable import GatewayServer
import NIOCore
import Testing
import TriggerModel

/// The one request context of every frontend: fields read the same way, one deadline, one trace.
@Suite("Request context: fields, the one deadline, the trace")
struct RequestContextTests {
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    static let ref = PipelineRef(namespace: "demo", pipeline: "echo")

    static func context(_ fields: [String: String], clientTimeout: TimeAmount? = nil) -> RequestContext {
        RequestContext(
            requestID: "r", start: start, requestTimeout: .seconds(60), clientTimeout: clientTimeout,
            field: { fields[$0] })
    }

    @Test("headers and metadata: the same names, the same rules")
    func fields() {
        var context = Self.context([
            "idempotency-key": "k-1", "instill-return-traces": "TRUE",
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "tracestate": "a=1",
        ])
        context.principal = "alice"
        let request = context.makeRequest(ref: Self.ref, mode: .sync, inputs: [])
        #expect(request.requestID == "r")
        #expect(request.principal == "alice")
        #expect(request.idempotencyKey == "k-1")
        #expect(request.returnTraces)
        #expect(request.traceState == "a=1")
        #expect(request.traceParent?.hasPrefix("00-4bf92f3577b34da6a3ce929d0e0e4736-") == true)
        #expect(request.traceParent?.hasSuffix("-00") == true, "the client's flags are kept")
        var other = Self.context(["instill-return-traces": "yes"])
        #expect(!other.makeRequest(ref: Self.ref, mode: .sync, inputs: []).returnTraces)
        #expect(RequestContext.requestID("") != "")
        #expect(RequestContext.requestID("mine") == "mine")
    }

    @Test("one deadline: sync the earlier of grpc-timeout and the request timeout; streams the client's; async none")
    func deadlines() {
        var plain = Self.context([:])
        #expect(plain.makeRequest(ref: Self.ref, mode: .sync, inputs: []).deadline == Self.start + .seconds(60))
        #expect(plain.makeRequest(ref: Self.ref, mode: .stream, inputs: []).deadline == nil)
        #expect(plain.makeRequest(ref: Self.ref, mode: .async, inputs: []).deadline == nil)

        var shorter = Self.context([:], clientTimeout: .seconds(59))
        #expect(shorter.makeRequest(ref: Self.ref, mode: .sync, inputs: []).deadline == Self.start + .seconds(59))
        #expect(shorter.makeRequest(ref: Self.ref, mode: .stream, inputs: []).deadline == Self.start + .seconds(59))
        var equal = Self.context([:], clientTimeout: .seconds(60))
        #expect(equal.makeRequest(ref: Self.ref, mode: .sync, inputs: []).deadline == Self.start + .seconds(60))
        var longer = Self.context([:], clientTimeout: .seconds(61))
        #expect(longer.makeRequest(ref: Self.ref, mode: .sync, inputs: []).deadline == Self.start + .seconds(60))
        #expect(longer.makeRequest(ref: Self.ref, mode: .stream, inputs: []).deadline == Self.start + .seconds(61))

        // The route's pool timeout is folded in from the same start, only when it is earlier.
        var pooled = Self.context([:])
        pooled.bound(byPoolTimeout: .seconds(5))
        #expect(pooled.makeRequest(ref: Self.ref, mode: .sync, inputs: []).deadline == Self.start + .seconds(5))
        pooled.bound(byPoolTimeout: .seconds(90))
        #expect(pooled.makeRequest(ref: Self.ref, mode: .sync, inputs: []).deadline == Self.start + .seconds(5))
        pooled.bound(byPoolTimeout: nil)
        #expect(pooled.makeRequest(ref: Self.ref, mode: .sync, inputs: []).deadline == Self.start + .seconds(5))
    }

    @Test("trace: a valid traceparent continues with a new span; none or an invalid one starts a sampled trace")
    func trace() {
        let continued = TraceContext(
            traceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", traceState: "v=1")
        #expect(!continued.started)
        #expect(continued.traceID == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(continued.traceParent.count == 55)
        #expect(continued.traceParent.hasPrefix("00-4bf92f3577b34da6a3ce929d0e0e4736-"))
        #expect(!continued.traceParent.contains("00f067aa0ba902b7"))
        #expect(continued.traceState == "v=1")
        #expect(TraceParent.traceID(of: continued.traceParent) == continued.traceID)

        // A later version is read by its first four fields and written as 00.
        let later = TraceContext(
            traceParent: "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", traceState: nil)
        #expect(later.traceParent.hasPrefix("00-4bf92f3577b34da6a3ce929d0e0e4736-"))

        for received in [nil, "", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "garbage"] {
            let started = TraceContext(traceParent: received, traceState: "v=1")
            #expect(started.started)
            #expect(started.traceState == nil)
            #expect(started.traceParent.hasSuffix("-01"))
            #expect(TraceParent.traceID(of: started.traceParent) == started.traceID)
            #expect(started.traceID != "4bf92f3577b34da6a3ce929d0e0e4736")
        }
        let one = TraceContext(traceParent: nil, traceState: nil)
        let two = TraceContext(traceParent: nil, traceState: nil)
        #expect(one.traceID != two.traceID)
    }
}
