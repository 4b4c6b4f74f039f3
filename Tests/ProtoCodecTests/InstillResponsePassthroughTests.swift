import SeededRandom
import NIOCore
import Testing
import TriggerModel
import WireCodecs

@testable import ProtoCodec

/// A grpc runner's `RunResponse` carried through to the Instill gRPC client as its own bytes, renumbered
/// (issue 11): only when those bytes are what decoding and re-encoding would produce, with the same outcome or
/// error for everything else. Each rule of `InstillResponsePassthrough` is tried at its edge: the last form that
/// passes through and the first that is decoded instead.
@Suite("RunResponse passthrough to Instill clients")
struct InstillResponsePassthroughTests {
    // MARK: Wire helpers (runner.proto field numbers)

    static func varint(_ n: Int) -> [UInt8] {
        var n = n
        var out: [UInt8] = []
        while n >= 0x80 {
            out.append(UInt8(n & 0x7F) | 0x80)
            n >>= 7
        }
        return out + [UInt8(n)]
    }

    static func field(_ tag: UInt8, _ payload: [UInt8]) -> [UInt8] { [tag] + varint(payload.count) + payload }
    static func output(_ entries: [UInt8]...) -> [UInt8] { field(0x0A, entries.flatMap { $0 }) }
    static func object(_ entries: [UInt8]...) -> [UInt8] { entries.flatMap { $0 } }
    static func entry(_ key: String, _ value: [UInt8]) -> [UInt8] { entry(key: Array(key.utf8), value) }
    static func entry(key: [UInt8], _ value: [UInt8]) -> [UInt8] {
        field(0x0A, (key.isEmpty ? [] : field(0x0A, key)) + field(0x12, value))
    }
    static func string(_ s: String) -> [UInt8] { field(0x22, Array(s.utf8)) }
    static func number(_ d: Double) -> [UInt8] {
        [0x19] + withUnsafeBytes(of: d.bitPattern.littleEndian, Array.init)
    }
    static let null: [UInt8] = [0x08, 0x00]
    static let yes: [UInt8] = [0x10, 0x01]
    static func list(_ values: [UInt8]...) -> [UInt8] { field(0x2A, values.flatMap { field(0x0A, $0) }) }
    static func nested(_ entries: [UInt8]...) -> [UInt8] { field(0x32, entries.flatMap { $0 }) }

    /// Both paths for `bytes`: the client's message through `decodeRunOutcome` (which may pass it through) and
    /// through the model, which is how every answer was handled before. Checks they agree and says whether the
    /// message was passed through.
    @discardableResult
    static func agree(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) throws -> Bool {
        let buffer = ByteBuffer(bytes: bytes)
        let outcome = Result { try RunnerCodec.decodeRunOutcome(buffer) }
        let reference = Result { try RunnerCodec.decodeRunOutcomeTree(buffer) }
        switch (outcome, reference) {
        case (.success(.success(let result)), .success(.success(let tree))):
            #expect(
                InstillCodec.encodeTriggerResponse(result) == InstillCodec.encodeTriggerResponseTree(tree),
                sourceLocation: sourceLocation)
            // The same outputs, compared through the runner's encoding so that a NaN equals itself.
            #expect(
                RunnerCodec.encodeRunResponse(result) == RunnerCodec.encodeRunResponse(tree),
                sourceLocation: sourceLocation)
            return result.instillProto != nil
        case (.success(.failure(let error)), .success(.failure(let tree))):
            #expect(error == tree, sourceLocation: sourceLocation)
        case (.failure(let error), .failure(let tree)):
            #expect("\(error)" == "\(tree)", sourceLocation: sourceLocation)
        default:
            Issue.record("the paths disagree: \(outcome) vs \(reference)", sourceLocation: sourceLocation)
        }
        return false
    }

    /// `bytes` with one to three seeded changes: a byte replaced, a bit flipped, a byte inserted, or the rest cut.
    static func mutated(_ bytes: [UInt8], using rng: inout SplitMix64) -> [UInt8] {
        var bytes = bytes
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            let at = Int.random(in: 0..<bytes.count, using: &rng)
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: bytes[at] = UInt8.random(in: 0...255, using: &rng)
            case 1: bytes[at] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
            case 2: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: at)
            default: bytes.removeSubrange(at...)
            }
            if bytes.isEmpty { break }
        }
        return bytes
    }

    // MARK: Passed through

    static let plain = ValueObject([
        (key: "text", value: .string("héllo 日本 😀")), (key: "empty", value: .string("")),
        (key: "n", value: .number(1.5)), (key: "zero", value: .number(0)), (key: "minus-zero", value: .number(-0.0)),
        (key: "t", value: .bool(true)), (key: "f", value: .bool(false)),
        (key: "nothing", value: .null), (key: "", value: .string("an empty key is written as no key")),
        (key: "data:", value: .string("data:text/plain;base64,aGk=")),  // a runner string is never a blob
        (key: "list", value: .list([.number(1), .list([]), .object(ValueObject()), .string("x")])),
        (key: "obj", value: .object(ValueObject([(key: "K", value: .null), (key: "é", value: .null)]))),
    ])

    @Test(
        "Answers the runner's encoder writes without blobs or traces pass through, renumbered",
        arguments: [
            [], [ValueObject()], [plain], [plain, ValueObject(), plain],
            [ValueObject([(key: "long", value: .string(String(repeating: "x", count: 300)))])],
        ]
    )
    func passedThrough(outputs: [ValueObject]) throws {
        let bytes = RunnerCodec.encodeRunResponse(TriggerResult(outputs: outputs))
        #expect(try Self.agree(Array(buffer: bytes)))
        let result = try RunnerCodec.decodeRunResponse(bytes)
        // Same size: every tag renumbered is one byte; decoding the Instill bytes gives the outputs back.
        #expect(result.instillProto?.readableBytes == bytes.readableBytes)
        // What an Instill client decodes (where a "data:" string is a blob) is what it decoded before.
        let before = InstillCodec.encodeTriggerResponseTree(TriggerResult(outputs: outputs))
        #expect(
            try InstillCodec.decodeTriggerResponse(result.instillProto!) == InstillCodec.decodeTriggerResponse(before))
        // The answer carries its gRPC prefix: framed in its own storage, the same bytes as framed by a copy.
        let message = result.instillProto!
        let framed = GRPCMessageFramer.frame(message)
        #expect(framed == GRPCMessageFramer.frame(ByteBuffer(bytes: Array(buffer: message))))
        #expect(
            framed.withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
                == message.withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) })
    }

    /// A client's NaN or infinity is refused (`StructCodec`), so the canonical form holds finite numbers only; a
    /// runner's goes to the client as the decoding path writes it, as before the passthrough.
    @Test("An answer with an infinite or NaN number is not passed through; the decoding path gives the client it")
    func nonFiniteAnswer() throws {
        for number in [Double.infinity, -.infinity, .nan] {
            let outputs: [ValueObject] = [["n": .number(number), "s": .string("x")]]
            let bytes = RunnerCodec.encodeRunResponse(TriggerResult(outputs: outputs))
            let result = try RunnerCodec.decodeRunResponse(bytes)
            #expect(result.instillProto == nil)
            #expect(
                InstillCodec.encodeTriggerResponse(result)
                    == InstillCodec.encodeTriggerResponseTree(TriggerResult(outputs: outputs)))
        }
    }

    @Test("Reading the outputs decodes the runner's message once; changing them drops the passed-through bytes")
    func lazyOutputs() throws {
        let bytes = RunnerCodec.encodeRunResponse(TriggerResult(outputs: [Self.plain]))
        var result = try RunnerCodec.decodeRunResponse(bytes)
        #expect(result.instillProto != nil)
        #expect(result.restJSON == nil)
        #expect(result.outputs == [Self.plain])
        #expect(result.instillProto != nil)
        result.outputs = [ValueObject()]
        #expect(result.instillProto == nil)
        #expect(InstillCodec.encodeTriggerResponse(result) == InstillCodec.encodeTriggerResponseTree(result))
        var traced = try RunnerCodec.decodeRunResponse(bytes)
        traced.metadata = TriggerMetadata(traces: ["c": Trace(statuses: [.completed])])
        #expect(traced.instillProto == nil)
        #expect(traced.outputs == [Self.plain])
    }

    // MARK: Each rule at its edge

    @Test("Traces and application errors take the decoding path")
    func tracesAndErrors() throws {
        let traced = TriggerResult(
            outputs: [Self.plain], metadata: TriggerMetadata(traces: ["c": Trace(statuses: [.completed])]))
        #expect(try !Self.agree(Array(buffer: RunnerCodec.encodeRunResponse(traced))))
        #expect(try !Self.agree(Array(buffer: RunnerCodec.encodeRunError(GatewayError(.application(9), "no")))))
        // An error after outputs, and an unknown top-level field.
        #expect(try !Self.agree(Self.output(Self.entry("a", Self.null)) + Self.field(0x1A, [0x08, 0x05])))
        #expect(try !Self.agree(Self.output(Self.entry("a", Self.null)) + [0x48, 0x01]))
    }

    @Test("Blobs are decoded and re-encoded as data URIs")
    func blobs() throws {
        let blob = TriggerResult(outputs: [
            ValueObject([(key: "b", value: .blob(Blob(bytes: ByteBuffer(string: "hi"))))])
        ])
        #expect(try !Self.agree(Array(buffer: RunnerCodec.encodeRunResponse(blob))))
    }

    @Test("Keys: distinct as Swift compares them, an empty key only as no key, NUL and bad UTF-8 refused")
    func keys() throws {
        #expect(try Self.agree(Self.output(Self.entry("a", Self.null), Self.entry("b", Self.null))))
        #expect(try !Self.agree(Self.output(Self.entry("a", Self.null), Self.entry("a", Self.yes))))
        #expect(try !Self.agree(Self.output(Self.entry("", Self.null), Self.entry("", Self.yes))))
        // Canonically equivalent keys are one key to `ValueObject`: precomposed and decomposed é, and the Kelvin
        // sign and K (ASCII against non-ASCII).
        #expect(try Self.agree(Self.output(Self.entry("é", Self.null), Self.entry("e", Self.null))))
        #expect(try !Self.agree(Self.output(Self.entry("é", Self.null), Self.entry("e\u{301}", Self.yes))))
        #expect(try !Self.agree(Self.output(Self.entry("K", Self.null), Self.entry("\u{212A}", Self.yes))))
        // Duplicates one level down and across sibling objects.
        #expect(
            try Self.agree(
                Self.output(Self.entry("o", Self.nested(Self.entry("a", Self.null))), Self.entry("a", Self.null))))
        #expect(
            try !Self.agree(
                Self.output(Self.entry("o", Self.nested(Self.entry("a", Self.null), Self.entry("a", Self.null))))))
        // An explicit empty key: protobuf-c writes none.
        #expect(try !Self.agree(Self.output(Self.field(0x0A, [0x0A, 0x00] + Self.field(0x12, Self.null)))))
        #expect(try !Self.agree(Self.output(Self.entry(key: [0x61, 0x00, 0x62], Self.null))))
        #expect(try !Self.agree(Self.output(Self.entry(key: [0xC3], Self.null))))
    }

    @Test("At most maxCheckedKeys keys per object pass through")
    func keyCount() throws {
        func keys(_ n: Int) -> [UInt8] { Self.output((0..<n).flatMap { Self.entry("k\($0)", Self.null) }) }
        #expect(try Self.agree(keys(ValueWireTranscoder.maxCheckedKeys)))
        #expect(try !Self.agree(keys(ValueWireTranscoder.maxCheckedKeys + 1)))
    }

    @Test("Entries: the key then exactly one value, each once")
    func entries() throws {
        #expect(try !Self.agree(Self.output(Self.field(0x0A, Self.field(0x0A, Array("a".utf8))))))  // no value
        #expect(try !Self.agree(Self.output(Self.field(0x0A, Self.field(0x12, Self.null) + Self.field(0x0A, [0x61])))))
        #expect(
            try !Self.agree(
                Self.output(
                    Self.field(
                        0x0A, Self.field(0x0A, [0x61]) + Self.field(0x12, Self.null) + Self.field(0x12, Self.yes)))))
        #expect(
            try !Self.agree(
                Self.output(
                    Self.field(0x0A, Self.field(0x0A, [0x61]) + Self.field(0x0A, [0x62]) + Self.field(0x12, Self.null)))
            ))
        #expect(
            try !Self.agree(
                Self.output(Self.field(0x0A, Self.field(0x0A, [0x61]) + Self.field(0x12, Self.null) + [0x18, 0x01]))))
        // An unknown field in an Object.
        #expect(try !Self.agree(Self.output(Self.entry("a", Self.null)) + Self.output([0x12, 0x00])))
    }

    @Test("Values: exactly one case in canonical form")
    func values() throws {
        func one(_ value: [UInt8]) throws -> Bool { try Self.agree(Self.output(Self.entry("v", value))) }
        #expect(try one([0x08, 0x00]))
        #expect(try !one([0x08, 0x01]))  // an unknown NullValue
        #expect(try one([0x10, 0x00]))
        #expect(try one([0x10, 0x01]))
        #expect(try !one([0x10, 0x02]))
        #expect(try !one([0x10, 0x81, 0x00]))  // a longer varint for 1
        #expect(try !one([]))  // no case set
        #expect(try !one(Self.null + Self.yes))  // two cases: the last wins when decoding
        #expect(try !one(Self.string("a") + Self.string("b")))
        #expect(try one(Self.number(.greatestFiniteMagnitude)))
        #expect(try !one(Self.number(.nan)))
        #expect(try !one(Self.number(.signalingNaN)))
        #expect(try !one([0x40, 0x00]))  // an unknown field
        #expect(try !one(Self.field(0x3A, [])))  // an empty blob
    }

    @Test("Strings: well-formed UTF-8 without NUL")
    func strings() throws {
        func one(_ bytes: [UInt8]) throws -> Bool {
            try Self.agree(Self.output(Self.entry("s", Self.field(0x22, bytes))))
        }
        #expect(try one([]))
        #expect(try one(Array("\u{7F}\u{80}\u{7FF}\u{800}\u{D7FF}\u{E000}\u{FFFF}\u{10000}\u{10FFFF}".utf8)))
        #expect(try !one([0x61, 0x00]))
        #expect(try !one([0xC0, 0x80]))  // overlong NUL
        #expect(try !one([0xE0, 0x9F, 0xBF]))  // overlong
        #expect(try !one([0xED, 0xA0, 0x80]))  // a surrogate
        #expect(try !one([0xF4, 0x90, 0x80, 0x80]))  // past U+10FFFF
        #expect(try !one([0xE6, 0x97]))  // truncated
        #expect(try !one([0x80]))  // a stray continuation byte
    }

    @Test("Lengths: minimal varints within their message")
    func lengths() throws {
        let long = Array(repeating: UInt8(ascii: "x"), count: 128)
        #expect(try Self.agree(Self.output(Self.entry("s", Self.field(0x22, long)))))
        // 0x80 0x00: zero in two bytes.
        #expect(try !Self.agree([0x0A, 0x80, 0x00]))
        #expect(try Self.agree([0x0A, 0x00]))
        let entry = Self.entry("a", Self.null)
        #expect(try !Self.agree([0x0A, UInt8(entry.count) | 0x80, 0x00] + entry))
        // A length past the end of its message.
        #expect(try !Self.agree([0x0A, 0x05, 0x0A, 0x03]))
        #expect(try !Self.agree(Self.output(Self.field(0x0A, [0x0A, 0x05, 0x61]))))
    }

    @Test("Nesting within ProtoLimits.maxNestingDepth passes through; one level more is refused on both paths")
    func depth() throws {
        func nestedLists(_ levels: Int) -> [UInt8] {
            // The output object is level 1; each list adds one.
            var value = Self.null
            for _ in 0..<(levels - 1) { value = Self.list(value) }
            return Self.output(Self.entry("v", value))
        }
        #expect(try Self.agree(nestedLists(ProtoLimits.maxNestingDepth)))
        #expect(try !Self.agree(nestedLists(ProtoLimits.maxNestingDepth + 1)))
        #expect(throws: GatewayError.self) { try RunnerCodec.decodeRunOutcome(ByteBuffer(bytes: nestedLists(65))) }
        func nestedObjects(_ levels: Int) -> [UInt8] {
            var value = Self.null
            for _ in 0..<(levels - 1) { value = Self.nested(Self.entry("o", value)) }
            return Self.output(Self.entry("v", value))
        }
        #expect(try Self.agree(nestedObjects(ProtoLimits.maxNestingDepth)))
        #expect(try !Self.agree(nestedObjects(ProtoLimits.maxNestingDepth + 1)))
    }

    @Test("Mutated answers (bytes flipped, cut, inserted): both paths give the same bytes or the same error")
    func mutations() throws {
        var rng = SplitMix64(seed: 11)
        let bases = [
            Array(buffer: RunnerCodec.encodeRunResponse(TriggerResult(outputs: [Self.plain, ValueObject()]))),
            Self.output(
                Self.entry("é", Self.null), Self.entry("e", Self.list(Self.yes, Self.number(2), Self.string("x")))),
        ]
        var passed = 0
        for round in 0..<2000 {
            if try Self.agree(Self.mutated(bases[round % bases.count], using: &rng)) { passed += 1 }
        }
        // Some mutations (a changed letter in a string, a flipped bit in a number) keep the canonical form.
        #expect(passed > 0)
    }
}
