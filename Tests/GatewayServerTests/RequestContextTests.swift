@testable import GatewayServer
import NIOCore
import Testing
import TriggerModel
import TestScheduling

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
        let request = context.makeRequest(ref: Self.ref, mode: .sync, inputs: [], now: Self.start)
        #expect(request.requestID == "r")
        #expect(request.principal == "alice")
        #expect(request.idempotencyKey == "k-1")
        #expect(request.returnTraces)
        #expect(request.traceState == "a=1")
        #expect(request.traceParent?.hasPrefix("00-4bf92f3577b34da6a3ce929d0e0e4736-") == true)
        #expect(request.traceParent?.hasSuffix("-00") == true, "the client's flags are kept")
        var other = Self.context(["instill-return-traces": "yes"])
        #expect(!other.makeRequest(ref: Self.ref, mode: .sync, inputs: [], now: Self.start).returnTraces)
        #expect(RequestContext.requestID("") != "")
        #expect(RequestContext.requestID("mine") == "mine")
    }

    @Test("the client's sensitive marks reach the request; the request id's only when the id is the client's own")
    func sensitiveMarks() {
        var marks = SensitiveFields()
        marks.insert(.requestID)
        marks.insert(.traceState)
        // "r" is the context's request id: the client's own when it sent "r", a made one when it sent another.
        var own = Self.context(["tracestate": "a=1"])
        own.markSensitive(marks, sentRequestID: "r")
        let ownRequest = own.makeRequest(ref: Self.ref, mode: .sync, inputs: [], now: Self.start)
        #expect(ownRequest.sensitiveFields == marks)
        var made = Self.context(["tracestate": "a=1"])
        made.markSensitive(marks, sentRequestID: "a request id refused for its\u{7F}byte")
        let madeRequest = made.makeRequest(ref: Self.ref, mode: .sync, inputs: [], now: Self.start)
        #expect(madeRequest.sensitiveFields.contains(.traceState))
        #expect(!madeRequest.sensitiveFields.contains(.requestID))
        // None marked: none on the request.
        var none = Self.context([:])
        #expect(none.makeRequest(ref: Self.ref, mode: .sync, inputs: [], now: Self.start).sensitiveFields.isEmpty)
    }

    @Test("a client's request-id is kept up to 200 bytes of visible ASCII; longer, spaced or non-ASCII: ours instead")
    func requestIDRule() {
        let edge = String(repeating: "r", count: 200)
        #expect(RequestContext.requestID(edge) == edge)
        let past = String(repeating: "r", count: 201)
        let replaced = RequestContext.requestID(past)
        #expect(replaced != past)
        #expect(replaced.utf8.count == 32 && replaced.allSatisfy(\.isHexDigit), "one of ours: \(replaced)")
        #expect(RequestContext.requestID(#"!~"quoted";x=1"#) == #"!~"quoted";x=1"#, "visible ASCII is kept")
        for bad in ["sp ace", "caf\u{e9}", "tab\there", "del\u{7f}", "nul\u{0}"] {
            #expect(RequestContext.requestID(bad) != bad, "\(bad.debugDescription)")
        }
    }

    @Test("one deadline: sync the earlier of grpc-timeout and the request timeout; streams the client's; async none")
    func deadlines() {
        var plain = Self.context([:])
        #expect(
            plain.makeRequest(ref: Self.ref, mode: .sync, inputs: [], now: Self.start).deadline == Self.start
                + .seconds(60))
        #expect(plain.makeRequest(ref: Self.ref, mode: .stream, inputs: [], now: Self.start).deadline == nil)
        #expect(plain.makeRequest(ref: Self.ref, mode: .async, inputs: [], now: Self.start).deadline == nil)

        var shorter = Self.context([:], clientTimeout: .seconds(59))
        #expect(
            shorter.makeRequest(ref: Self.ref, mode: .sync, inputs: [], now: Self.start).deadline == Self.start
                + .seconds(59))
        #expect(
            shorter.makeRequest(ref: Self.ref, mode: .stream, inputs: [], now: Self.start).deadline == Self.start
                + .seconds(59))
        var equal = Self.context([:], clientTimeout: .seconds(60))
        #expect(
            equal.makeRequest(ref: Self.ref, mode: .sync, inputs: [], now: Self.start).deadline == Self.start
                + .seconds(60))
        var longer = Self.context([:], clientTimeout: .seconds(61))
        #expect(
            longer.makeRequest(ref: Self.ref, mode: .sync, inputs: [], now: Self.start).deadline == Self.start
                + .seconds(60))
        #expect(
            longer.makeRequest(ref: Self.ref, mode: .stream, inputs: [], now: Self.start).deadline == Self.start
                + .seconds(61))

        // The route's pool timeout counts from the request's completion (`now`), and binds only when it is
        // earlier than the end-to-end deadline (review 18, F1: a slow upload is not the pool's time).
        var pooled = Self.context([:])
        pooled.bound(byPoolTimeout: .seconds(5))
        let complete = Self.start + .seconds(30)
        #expect(
            pooled.makeRequest(ref: Self.ref, mode: .sync, inputs: [], now: complete).deadline == complete + .seconds(5)
        )
        #expect(pooled.makeRequest(ref: Self.ref, mode: .stream, inputs: [], now: complete).deadline == nil)
        let late = Self.start + .seconds(56)
        #expect(
            pooled.makeRequest(ref: Self.ref, mode: .sync, inputs: [], now: late).deadline == Self.start + .seconds(60))
        pooled.bound(byPoolTimeout: .seconds(90))
        #expect(
            pooled.makeRequest(ref: Self.ref, mode: .sync, inputs: [], now: Self.start).deadline == Self.start
                + .seconds(60))
        pooled.bound(byPoolTimeout: nil)
        #expect(
            pooled.makeRequest(ref: Self.ref, mode: .sync, inputs: [], now: complete).deadline == Self.start
                + .seconds(60))
        var pooledClient = Self.context([:], clientTimeout: .seconds(32))
        pooledClient.bound(byPoolTimeout: .seconds(5))
        let request = pooledClient.makeRequest(ref: Self.ref, mode: .sync, inputs: [], now: complete)
        #expect(request.deadline == Self.start + .seconds(32) && request.deadlineIsClients)
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
        #expect(TraceParent.traceID(of: continued.traceParent) == String(continued.traceID))

        // A later version is read by its first four fields and written as 00.
        let later = TraceContext(
            traceParent: "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", traceState: nil)
        #expect(later.traceParent.hasPrefix("00-4bf92f3577b34da6a3ce929d0e0e4736-"))

        for received in [nil, "", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "garbage"] {
            let started = TraceContext(traceParent: received, traceState: "v=1")
            #expect(started.started)
            #expect(started.traceState == nil)
            #expect(started.traceParent.hasSuffix("-01"))
            #expect(TraceParent.traceID(of: started.traceParent) == String(started.traceID))
            #expect(started.traceID != "4bf92f3577b34da6a3ce929d0e0e4736")
        }
        let one = TraceContext(traceParent: nil, traceState: nil)
        let two = TraceContext(traceParent: nil, traceState: nil)
        #expect(one.traceID != two.traceID)
    }

    /// The 128 bits of an id as two words (32 lowercase hex digits).
    static func bits(_ hex: some StringProtocol) -> [UInt64] {
        [UInt64(hex.prefix(16), radix: 16)!, UInt64(hex.dropFirst(16).prefix(16), radix: 16)!]
    }

    /// How often each bit position is set across `ids`: a generator that is stuck, repeats, or leaves a bit
    /// constant shows here.
    static func ones(_ ids: [[UInt64]]) -> [Int] {
        var ones = [Int](repeating: 0, count: ids.first.map { $0.count * 64 } ?? 0)
        for id in ids {
            for (w, word) in id.enumerated() {
                for bit in 0..<64 where word >> UInt64(bit) & 1 == 1 { ones[w * 64 + bit] += 1 }
            }
        }
        return ones
    }

    @Test(
        "started trace ids, span ids and request ids: valid W3C ids, non-zero, unique, every bit random-looking",
        .cpuBound)
    func randomIDs() {
        let count = 4096
        var traceIDs: [[UInt64]] = []
        var spanIDs: [[UInt64]] = []
        var requestIDs: [[UInt64]] = []
        var seen = Set<String>()
        let hexDigits = Set("0123456789abcdef".utf8)
        for _ in 0..<count {
            let trace = TraceContext(traceParent: nil, traceState: nil)
            // A parser (§3.2) accepts what we send: version 00, 32 + 16 lowercase hex, ids not all zero, sampled.
            #expect(TraceParent.traceID(of: trace.traceParent) == String(trace.traceID))
            #expect(trace.traceID.utf8.count == 32 && trace.traceID.utf8.allSatisfy(hexDigits.contains))
            let span = trace.traceParent.utf8.dropFirst(36).prefix(16)
            #expect(span.allSatisfy(hexDigits.contains) && span.contains { $0 != UInt8(ascii: "0") })
            traceIDs.append(Self.bits(trace.traceID))
            spanIDs.append([UInt64(String(decoding: span, as: UTF8.self), radix: 16)!])
            let requestID = RequestContext.requestID(nil)
            #expect(requestID.utf8.count == 32 && requestID.utf8.allSatisfy(hexDigits.contains))
            requestIDs.append(Self.bits(requestID))
            seen.insert(String(trace.traceID))
            seen.insert(requestID)
        }
        #expect(seen.count == 2 * count, "no id repeats")
        // Each bit is set in about half of 4096 draws (binomial, σ = 32): outside 1700...2400 (more than 10 σ
        // off) only a broken generator lands, never a working one by chance.
        for (name, ids) in [("trace", traceIDs), ("span", spanIDs), ("request", requestIDs)] {
            let ones = Self.ones(ids)
            let off = ones.enumerated().filter { !(1700...2400).contains($0.element) }
            #expect(off.isEmpty, "\(name) id bits far from half set: \(off.prefix(8))")
        }
    }

    @Test("ids drawn on other threads differ from this one's: each thread's generator has its own seed")
    func randomIDsAcrossThreads() async {
        let local = (0..<64).map { _ in String(TraceContext(traceParent: nil, traceState: nil).traceID) }
        let others = await withTaskGroup(of: [String].self) { group in
            for _ in 0..<4 {
                group.addTask { (0..<64).map { _ in String(TraceContext(traceParent: nil, traceState: nil).traceID) } }
            }
            return await group.reduce(into: [String]()) { $0 += $1 }
        }
        #expect(Set(local + others).count == local.count + others.count)
    }
}
