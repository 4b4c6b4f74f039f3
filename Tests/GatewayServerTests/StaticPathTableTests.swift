@testable import GatewayServer
import ProtoCodec
import Testing

/// `StaticPathTable` (the gRPC method table's lookup, issue 11) finds exactly its keys, byte for byte, and hands
/// back its own key object.
@Suite("StaticPathTable")
struct StaticPathTableTests {
    /// Keys of every length from 0 to 40 (word boundaries and tails) and many sharing a long prefix, as the
    /// pipeline service's paths do; more keys than the smallest table so that runs of slots are probed.
    static let keys: [String] =
        (0...40).map { String(repeating: "k", count: $0) }
        + (0..<120).map { "/pipeline.pipeline.v1beta.PipelinePublicService/Method\($0)" }

    static let table = StaticPathTable(keys.enumerated().map { (key: $0.element, value: $0.offset) })

    @Test("every key is found with its value, as the table's own string")
    func everyKey() {
        for (index, key) in Self.keys.enumerated() {
            // A string with the same bytes but storage of its own, as a header value is.
            let probe = String(decoding: Array(key.utf8), as: UTF8.self)
            guard let found = Self.table.lookup(probe) else {
                Issue.record("not found: \(key)")
                continue
            }
            #expect(found.value == index)
            #expect(found.key == key)
        }
        let first = Self.table.lookup(String(decoding: Array(Self.keys[60].utf8), as: UTF8.self))
        let second = Self.table.lookup(String(decoding: Array(Self.keys[60].utf8), as: UTF8.self))
        #expect(first.map(Self.storage) == second.map(Self.storage), "the same key object every time")
    }

    @Test("a key with one byte changed, one byte more or one byte less is not found")
    func nearMisses() {
        for key in Self.keys {
            let bytes = Array(key.utf8)
            for position in bytes.indices {
                var changed = bytes
                changed[position] ^= 0x01
                let miss = String(decoding: changed, as: UTF8.self)
                if Self.keys.contains(miss) { continue }
                #expect(Self.table.lookup(miss) == nil, "found \(miss)")
            }
            let longer = key + "x"
            if !Self.keys.contains(longer) { #expect(Self.table.lookup(longer) == nil, "found \(longer)") }
            if !bytes.isEmpty {
                let shorter = String(decoding: bytes.dropLast(), as: UTF8.self)
                if !Self.keys.contains(shorter) { #expect(Self.table.lookup(shorter) == nil, "found \(shorter)") }
            }
        }
        // Bytes that differ only past the key's end: the tail word of a shorter key is zero-padded.
        #expect(Self.table.lookup("k\u{0}") == nil)
        #expect(StaticPathTable([(key: "ab", value: 1)]).lookup("ab\u{0}") == nil)
    }

    @Test("the byte comparison sees a difference at every position, in the words and in the tail")
    func equalBytes() {
        for count in 0...20 {
            let bytes = (0..<count).map { UInt8(truncatingIfNeeded: 0x41 + $0) }
            bytes.withUnsafeBytes { a in
                #expect(StaticPathTable<Int>.equal(a, a))
                for position in 0..<count {
                    var changed = bytes
                    changed[position] ^= 0x20
                    changed.withUnsafeBytes { b in
                        #expect(!StaticPathTable<Int>.equal(a, b), "\(count) at \(position)")
                    }
                }
                (bytes + [0]).withUnsafeBytes { b in #expect(!StaticPathTable<Int>.equal(a, b)) }
            }
        }
    }

    @Test("the gRPC method table answers the method and its path as the table holds it")
    func grpcMethods() {
        let path = "/pipeline.pipeline.v1beta.PipelinePublicService/TriggerNamespacePipeline"
        let header = String(decoding: Array(path.utf8), as: UTF8.self)
        guard let found = GRPCCall.method(path: header) else {
            Issue.record("TriggerNamespacePipeline not found")
            return
        }
        guard case .trigger(release: false) = found.method else {
            Issue.record("\(found.method)")
            return
        }
        #expect(found.generation == .pipelinePipelineV1beta)
        #expect(found.path == path)
        let again = GRPCCall.method(path: String(decoding: Array(path.utf8), as: UTF8.self))
        #expect(again.map { Self.storage($0.path) } == Self.storage(found.path))
        #expect(GRPCCall.method(path: path + "/") == nil)
        #expect(GRPCCall.method(path: "") == nil)
    }

    /// Where `string`'s bytes are: the same object answers the same address.
    static func storage(_ string: String) -> UInt? {
        var string = string
        return string.withUTF8 { $0.baseAddress.map { UInt(bitPattern: $0) } }
    }

    static func storage(_ found: (key: String, value: Int)) -> UInt? { storage(found.key) }
}
