import Backends
import DemoRunner
import GatewayTestSupport
import NIOCore
import Testing
import TriggerModel

/// What a grpc runner receives in a call's HEADERS, on the wire (issue 11: the runner's CPU per call behind the
/// gateway was ~1.5–2× that behind nghttpx): a relay between the transport and the demo gRPC server records the
/// bytes, and the test walks each request's HPACK block (RFC 7541 §6) to see how every field was sent.
@Suite("gRPC backend calls: HPACK form of the request headers")
struct GRPCBackendHPACKTests {
    @Test(
        "the first call indexes the per-call fields; from the second on they go never indexed with indexed names, the rest (grpc-timeout too) as indexes"
    )
    func perCallValuesNeverIndexed() async throws {
        try await withGRPCBackend { backend in
            let relay = try await RecordingRelay(backendPort: backend.port)
            let transport = makeTransport(port: relay.port)
            defer { transport.close() }
            for call in 0..<3 {
                // 1 000 s: `grpc-timeout` rounds up to three digits, here whole seconds ("1000S" for anything over
                // 999 s left), so a loaded machine's delay between calls cannot change the value (at 30 s, 100 ms
                // would).
                let started = ContinuousClock.now
                var request = makeRequest("meta", deadline: .now() + .seconds(1_000))
                request.requestID = "rid-\(call)-\(UInt64.random(in: 0...UInt64.max))"
                let span = String(UInt64.random(in: 1...UInt64.max), radix: 16)
                request.traceParent =
                    "00-0af7651916cd43dd8448eb211c80319c-\(String(repeating: "0", count: 16 - span.count))\(span)-01"
                request.idempotencyKey = "op-\(call)-\(UInt64.random(in: 0...UInt64.max))"
                request.principal = "alice"
                let out = try #require(try await transport.run(request).outputs.first)
                // The runner still receives every value as it was set.
                #expect(out["request_id"] == .string(request.requestID))
                #expect(out["traceparent"] == .string(request.traceParent!))
                #expect(out["idempotency_key"] == .string(request.idempotencyKey!))
                #expect(out["principal"] == .string("alice"))
                let ms = try #require(out["deadline_ms"]?.numberValue)
                // What the call took is gone from the deadline (18 s once, the full suite beside two builds).
                let took = Double(started.duration(to: .now).components.seconds) * 1000
                #expect(ms > 995_000 - took && ms <= 1_000_000, "deadline_ms \(ms), the call took \(took) ms")
            }
            await relay.close()
            let connections = relay.connections
            try #require(connections.count == 1, "the three calls share one connection")
            let blocks = try HPACKWalk.requestHeaderBlocks(connections[0])
            try #require(blocks.count == 3)
            // The first call puts the three per-call fields' names in the table (HPACKNamePriming): each is
            // indexed, name and value, and none goes never indexed yet.
            let first = try HPACKWalk.fields(blocks[0])
            #expect(!first.contains { $0.representation == .neverIndexed }, "\(first)")
            #expect(first.filter { $0.representation == .incrementalIndexing }.count >= 3, "\(first)")
            for block in blocks.dropFirst() {
                let fields = try HPACKWalk.fields(block)
                let kinds = fields.map(\.representation)
                #expect(!kinds.contains(.incrementalIndexing), "\(kinds)")
                // request-id, traceparent, idempotency-key: their values literal, their names one index each.
                let neverIndexed = fields.filter { $0.representation == .neverIndexed }
                #expect(neverIndexed.count == 3, "\(kinds)")
                #expect(neverIndexed.allSatisfy { $0.indexedName }, "\(fields)")
                // `:path` (libnghttp2 never indexes it); every other field, grpc-timeout and the principal
                // included, is one index into the table.
                #expect(kinds.filter { $0 == .withoutIndexing }.count <= 1, "\(kinds)")
            }
        }
    }
}

/// The structure of HPACK header blocks (RFC 7541 §6), no Huffman decoding: which representation each field used.
enum HPACKWalk {
    enum Representation: Equatable {
        case indexed
        case incrementalIndexing
        case withoutIndexing
        case neverIndexed
        case tableSizeUpdate
    }

    struct Malformed: Error {}

    /// The header blocks of the client's HEADERS frames (CONTINUATIONs appended), after the connection preface.
    static func requestHeaderBlocks(_ bytes: [UInt8]) throws -> [[UInt8]] {
        let prefaceCount = 24
        var index = prefaceCount
        var blocks: [[UInt8]] = []
        while index + 9 <= bytes.count {
            let length = Int(bytes[index]) << 16 | Int(bytes[index + 1]) << 8 | Int(bytes[index + 2])
            let type = bytes[index + 3]
            let flags = bytes[index + 4]
            let start = index + 9
            guard start + length <= bytes.count else { throw Malformed() }
            var payload = Array(bytes[start..<start + length])
            if type == 0x1 {
                var skip = 0
                var padding = 0
                if flags & 0x8 != 0 {
                    padding = Int(payload[0])
                    skip += 1
                }
                if flags & 0x20 != 0 { skip += 5 }
                payload = Array(payload[skip..<payload.count - padding])
                blocks.append(payload)
            } else if type == 0x9 {
                blocks[blocks.count - 1] += payload
            }
            index = start + length
        }
        return blocks
    }

    /// Each field's representation in `block`, in order, and for a literal whether its name is an index into the
    /// tables (RFC 7541 §6.2: a non-zero index in the first byte's prefix) rather than a string of its own.
    static func fields(_ block: [UInt8]) throws -> [(representation: Representation, indexedName: Bool)] {
        var index = 0
        var result: [(representation: Representation, indexedName: Bool)] = []
        func integer(prefixBits: Int) throws -> Int {
            guard index < block.count else { throw Malformed() }
            let mask = (1 << prefixBits) - 1
            var value = Int(block[index]) & mask
            index += 1
            guard value == mask else { return value }
            var shift = 0
            while true {
                guard index < block.count, shift < 28 else { throw Malformed() }
                let byte = Int(block[index])
                index += 1
                value += (byte & 0x7F) << shift
                shift += 7
                if byte & 0x80 == 0 { return value }
            }
        }
        func skipString() throws {
            let length = try integer(prefixBits: 7)  // the H bit is the prefix's top bit
            guard index + length <= block.count else { throw Malformed() }
            index += length
        }
        while index < block.count {
            let first = block[index]
            if first & 0x80 != 0 {
                _ = try integer(prefixBits: 7)
                result.append((.indexed, true))
            } else if first & 0x40 != 0 {
                let name = try integer(prefixBits: 6)
                if name == 0 { try skipString() }
                try skipString()
                result.append((.incrementalIndexing, name != 0))
            } else if first & 0x20 != 0 {
                _ = try integer(prefixBits: 5)
                result.append((.tableSizeUpdate, false))
            } else {
                let never = first & 0x10 != 0
                let name = try integer(prefixBits: 4)
                if name == 0 { try skipString() }
                try skipString()
                result.append((never ? .neverIndexed : .withoutIndexing, name != 0))
            }
        }
        return result
    }
}
