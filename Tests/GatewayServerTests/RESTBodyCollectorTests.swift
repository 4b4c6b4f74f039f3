@testable import GatewayServer
import NIOCore
import Testing
import TriggerModel
import WireCodecs

/// The REST body collector holds its gatherer in an enum payload: each append must take it out first, or the
/// payload's second reference makes every write copy the whole body (issue 12: a 24 MiB JSON body took 9 s).
@Suite("RESTBodyCollector gathers linearly")
struct RESTBodyCollectorTests {
    static func moves(_ collector: inout RESTBodyCollector, chunks: Int, size: Int) throws -> Int {
        var moves = 0
        var last: UInt?
        for _ in 0..<chunks {
            try collector.append(ByteBuffer(repeating: UInt8(ascii: " "), count: size))
            let address = collector.gatheredStorageAddress
            if address != last { moves += 1 }
            last = address
        }
        return moves
    }

    @Test("JSON and raw bodies, 16 MiB in 4 KiB chunks, declared or not: the storage moves O(log n) times")
    func linear() throws {
        var limits = CodecLimits.defaults
        limits.maxBodyBytes = 32 << 20
        var undeclared = RESTBodyCollector.json(limits: limits)
        #expect(try Self.moves(&undeclared, chunks: 4096, size: 4096) <= 20)
        var declared = RESTBodyCollector.raw(limits: limits, expectedLength: 16 << 20)
        #expect(try Self.moves(&declared, chunks: 4096, size: 4096) == 1)
        guard case .bytes(let body) = try declared.finishBody() else {
            Issue.record("a raw collector answers bytes")
            return
        }
        #expect(body.readableBytes == 16 << 20)
    }

    @Test("a large data URI is decoded into the gathered body itself: the blob lies inside its storage")
    func blobInPlace() throws {
        let payload = [UInt8](repeating: 0xAB, count: 300_000)
        var encoded = ByteBuffer()
        payload.withUnsafeBytes { Base64.encode($0, into: &encoded) }
        var body = ByteBuffer(string: #"{"data":[{"variable":{"f":"data:;base64,"#)
        body.writeImmutableBuffer(encoded)
        body.writeString(#""}}]}"#)
        var collector = RESTBodyCollector.json(limits: .defaults, expectedLength: body.readableBytes)
        for chunk in stride(from: 0, to: body.readableBytes, by: 65536) {
            try collector.append(body.getSlice(at: chunk, length: min(65536, body.readableBytes - chunk))!)
        }
        let storage = try #require(collector.gatheredStorageAddress)
        guard case .batch(let batch) = try collector.finishBody() else {
            Issue.record("a JSON collector answers a batch")
            return
        }
        let inputs = batch.inputs
        let blob = try #require(inputs.first?.variables["f"]?.blobValue)
        let address = blob.bytes.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress!) }
        #expect(address > storage && address < storage + 100, "the blob was copied out of the body")
        #expect(Array(blob.bytes.readableBytesView) == payload)
    }
}

/// `RESTBodyCollector.idle`: what the HTTP/1.1 frontend holds between requests instead of an Optional (branch
/// hotpath4). It is no collector: it says so, and refuses a body with an internal error rather than taking one.
@Suite("RESTBodyCollector.idle")
struct RESTBodyCollectorIdleTests {
    @Test("idle is idle; every real collector is not; idle refuses chunks and has no body to finish")
    func idle() throws {
        var idle = RESTBodyCollector.idle
        #expect(idle.isIdle)
        #expect(idle.gatheredStorageAddress == nil)
        #expect(!idle.keepsCanonicalBase64JSON && !idle.decodesMultipartBatch)
        let limits = CodecLimits.defaults
        let collectors = [
            RESTBodyCollector.json(limits: limits), .formLabelledJSON(limits: limits), .raw(limits: limits),
            try .multipart(boundary: "b", limits: limits), try .multipartParts(boundary: "b", limits: limits),
        ]
        for collector in collectors { #expect(!collector.isIdle) }
        #expect(throws: GatewayError.self) { try idle.append(ByteBuffer(string: "{}")) }
        do {
            _ = try idle.finishBody()
            Issue.record("an idle collector finished a body")
        } catch let error as GatewayError {
            #expect(error.code == .internalError)
        }
    }
}
