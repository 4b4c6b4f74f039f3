import SeededRandom
import NIOCore
import ProtoCodec
import Testing
import TriggerModel
import TestScheduling

@Suite("google.protobuf.Struct conversion")
struct StructConversionTests {
    static let ref = PipelineRef(namespace: "n", pipeline: "p")

    private func roundTrip(_ inputs: [TriggerInput]) throws -> [TriggerInput] {
        let bytes = InstillCodec.encodeTriggerRequest(ref: Self.ref, inputs: inputs)
        return try InstillCodec.decodeTriggerRequest(bytes, release: false, maxBatch: 32).inputs
    }

    @Test("values round-trip with key order, nesting, numbers, bools and null")
    func roundTripsValues() throws {
        let variables: ValueObject = [
            "zeta": .string("last letter first"),
            "alpha": .number(1),
            "neg": .number(-0.5),
            "big": .number(1e300),
            "flags": .list([.bool(true), .bool(false), .null]),
            "nested": .object(["b": .list([.object(["y": .number(2), "x": .string("")])]), "a": .object([:])]),
            "emoji": .string("héllo 👋"),
        ]
        let decoded = try roundTrip([TriggerInput(variables: variables, secrets: ["k": "v"])])
        #expect(decoded == [TriggerInput(variables: variables, secrets: ["k": "v"])])
        #expect(decoded[0].variables.keys == ["zeta", "alpha", "neg", "big", "flags", "nested", "emoji"])
        #expect(decoded[0].variables["nested"]?.objectValue?.keys == ["b", "a"])
    }

    @Test("an integer past 2^53 goes out as its nearest double: number_value is a double by the protocol")
    func largeIntegerIsADouble() throws {
        let decoded = try roundTrip([
            TriggerInput(variables: [
                "u": .integer(UInt64.max), "i": .integer(Int64.min), "s": .integer(Int64(1) << 53),
            ])
        ])
        #expect(decoded[0].variables["u"] == .number(18_446_744_073_709_551_616.0))
        #expect(decoded[0].variables["i"] == .number(-9_223_372_036_854_775_808.0))
        #expect(decoded[0].variables["s"] == .number(9_007_199_254_740_992.0))
        let response = InstillCodec.encodeTriggerResponse(TriggerResult(outputs: [["n": .integer(UInt64.max)]]))
        #expect(try InstillCodec.decodeTriggerResponse(response).outputs == [["n": .number(0x1p64)]])
    }

    /// SDK review 56, M2: a client's NaN reached an http runner as null, and an in-process echo's Infinity made the
    /// Instill SDK's own `MessageToDict` fail.
    @Test(
        "a number_value that is NaN or infinite, at any depth, is INVALID_ARGUMENT; the largest finite doubles pass",
        arguments: [Double.nan, .infinity, -.infinity])
    func nonFiniteNumbers(number: Double) throws {
        for variables: ValueObject in [["x": .number(number)], ["l": .list([.object(["y": .number(number)])])]] {
            let bytes = InstillCodec.encodeTriggerRequest(ref: Self.ref, inputs: [TriggerInput(variables: variables)])
            let error = #expect(throws: GatewayError.self) {
                try InstillCodec.decodeTriggerRequest(bytes, release: false, maxBatch: 32)
            }
            #expect(error?.code == .invalidArgument && error?.message.contains("no such number") == true)
        }
        let edges: ValueObject = ["max": .number(.greatestFiniteMagnitude), "min": .number(-.greatestFiniteMagnitude)]
        #expect(try roundTrip([TriggerInput(variables: edges)]) == [TriggerInput(variables: edges)])
    }

    @Test("a base64 data URI string becomes a blob, and a blob goes back as a data URI")
    func dataURIBecomesBlob() throws {
        let inputs = [TriggerInput(variables: ["file": .string("data:image/png;filename=a%20b.png;base64,iVBORw0K")])]
        let decoded = try roundTrip(inputs)
        let blob = try #require(decoded[0].variables["file"]?.blobValue)
        #expect(blob.contentType == "image/png")
        #expect(blob.fileName == "a b.png")
        #expect(Array(blob.bytes.readableBytesView) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A])

        // Encoding the blob yields a data URI string that decodes to the same blob.
        let again = try roundTrip(decoded)
        #expect(again == decoded)
        let response = InstillCodec.encodeTriggerResponse(TriggerResult(outputs: [["file": .blob(blob)]]))
        let result = try InstillCodec.decodeTriggerResponse(response)
        #expect(result.outputs == [["file": .blob(blob)]])
    }

    @Test(
        "a non-base64 or malformed data URI stays a string",
        arguments: [
            "data:text/plain,hello", "data:", "database: postgres", "data:image/png;base64", "DATA but not a URI",
        ]
    )
    func plainStringsStayStrings(s: String) throws {
        let decoded = try roundTrip([TriggerInput(variables: ["s": .string(s)])])
        #expect(decoded[0].variables["s"] == .string(s))
    }

    /// A large data URI string is decoded in place, into the memory protobuf-c unpacked it into
    /// (`UnpackAllocation`, issue 12): the blob's storage is the string's, about 4/3 of the blob, where a
    /// decode into a new buffer would have storage for the blob alone.
    @Test(
        "a large data URI decodes in place, into the storage protobuf-c unpacked the string into",
        .cpuBound, arguments: [65_536 / 4 * 3, 300_000, 1 << 20]
    )
    func largeDataURIInPlace(blobBytes: Int) throws {
        var rng = SplitMix64(seed: 7)
        let payload = (0..<blobBytes).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let uri = DataURI.encode(Blob(contentType: "image/png", fileName: "a.png", bytes: ByteBuffer(bytes: payload)))
        let decoded = try roundTrip([TriggerInput(variables: ["file": .string(uri), "s": .string("x")])])
        let blob = try #require(decoded[0].variables["file"]?.blobValue)
        #expect(blob.contentType == "image/png" && blob.fileName == "a.png")
        #expect(Array(blob.bytes.readableBytesView) == payload)
        #expect(blob.bytes.storageCapacity >= uri.utf8.count, "decoded into a new buffer, not in place")
        #expect(decoded[0].variables["s"] == .string("x"))
    }

    /// The edge of `UnpackAllocation.largeBytes` (64 KiB, the whole string): a data URI of exactly that many
    /// bytes is decoded in place, into the unpacked string's storage (the blob a slice of it); one byte shorter,
    /// into a buffer of its own. Both payloads are whole base64 quanta (headers of 16 and 19 bytes).
    @Test(
        "a data URI of exactly 64 KiB decodes in place; one byte under, into a buffer of its own",
        arguments: [(header: "data:a/b;base64,", inPlace: true), (header: "data:a/bcde;base64,", inPlace: false)])
    func inPlaceThreshold(header: String, inPlace: Bool) throws {
        let length = inPlace ? 65_536 : 65_535
        var rng = SplitMix64(seed: 9)
        let payload = (0..<((length - header.utf8.count) / 4 * 3)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        var encoded = ByteBuffer()
        payload.withUnsafeBytes { Base64.encode($0, into: &encoded) }
        let uri = header + String(buffer: encoded)
        #expect(uri.utf8.count == length)
        let decoded = try roundTrip([TriggerInput(variables: ["file": .string(uri)])])
        let blob = try #require(decoded[0].variables["file"]?.blobValue)
        #expect(Array(blob.bytes.readableBytesView) == payload)
        // A slice of the unpacked string's storage is exactly the payload; a buffer of its own has the allocator's
        // power-of-two capacity (64 KiB for the ~48 KiB payload).
        #expect((blob.bytes.capacity == payload.count) == inPlace, "capacity \(blob.bytes.capacity)")
    }

    @Test("a large string that is not a data URI, or only looks like one, stays that string")
    func largePlainString() throws {
        let text = String(repeating: "d", count: 100_000)
        let header = "data:text/plain," + String(repeating: "a", count: 100_000)
        let decoded = try roundTrip([TriggerInput(variables: ["a": .string(text), "b": .string(header)])])
        #expect(decoded[0].variables["a"] == .string(text))
        #expect(decoded[0].variables["b"] == .string(header))
    }

    @Test("a large data URI with a bad byte is an invalid argument naming its payload offset")
    func largeBrokenDataURI() throws {
        var uri = Array(DataURI.encode(Blob(bytes: ByteBuffer(repeating: 0xA5, count: 120_000))).utf8)
        let payloadStart = uri.firstIndex(of: UInt8(ascii: ","))! + 1
        uri[payloadStart + 70_001] = UInt8(ascii: "!")
        let bytes = InstillCodec.encodeTriggerRequest(
            ref: Self.ref, inputs: [TriggerInput(variables: ["f": .string(String(decoding: uri, as: UTF8.self))])])
        let error = #expect(throws: GatewayError.self) {
            try InstillCodec.decodeTriggerRequest(bytes, release: false, maxBatch: 32)
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("payload offset 70001") == true, "\(String(describing: error))")
    }

    @Test("a base64 data URI with a broken payload is an invalid argument")
    func brokenDataURI() throws {
        let bytes = InstillCodec.encodeTriggerRequest(
            ref: Self.ref,
            inputs: [TriggerInput(variables: ["f": .string("data:image/png;base64,!!!!")])]
        )
        let error = #expect(throws: GatewayError.self) {
            try InstillCodec.decodeTriggerRequest(bytes, release: false, maxBatch: 32)
        }
        #expect(error?.code == .invalidArgument)
    }

    /// `depth` containers: the variables object is level 1, each nested object or list adds one.
    static func nested(depth: Int, useLists: Bool) -> ValueObject {
        var value = Value.number(1)
        for level in stride(from: depth, to: 1, by: -1) {
            value = useLists && level % 2 == 0 ? .list([value]) : .object(["k": value])
        }
        return ["root": value]
    }

    @Test(
        "nesting at the limit is accepted and one more level is rejected",
        arguments: [
            (64, false), (64, true), (65, false), (65, true),
        ]
    )
    func depthLimit(depth: Int, useLists: Bool) throws {
        let variables = Self.nested(depth: depth, useLists: useLists)
        let bytes = InstillCodec.encodeTriggerRequest(ref: Self.ref, inputs: [TriggerInput(variables: variables)])
        if depth <= ProtoLimits.maxNestingDepth {
            let decoded = try InstillCodec.decodeTriggerRequest(bytes, release: false, maxBatch: 32)
            #expect(decoded.inputs[0].variables == variables)
        } else {
            let error = #expect(throws: GatewayError.self) {
                try InstillCodec.decodeTriggerRequest(bytes, release: false, maxBatch: 32)
            }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains("64") == true)
        }
    }

    @Test("hostile nesting far past the limit is rejected without recursing into it", .cpuBound)
    func hostileNesting() throws {
        // A request whose first input is a Struct with one entry whose value is 200 000 nested ListValues:
        // unpacked naively this would exhaust the stack.
        let levels = 200_000
        // Sizes from the inside out: Value{list_value: ListValue{values: Value{…}}}.
        var valueSizes = [Int](repeating: 0, count: levels + 1)
        for i in 1...levels {
            let list = 1 + varintSize(valueSizes[i - 1]) + valueSizes[i - 1]
            valueSizes[i] = 1 + varintSize(list) + list
        }
        var body: [UInt8] = []
        body.reserveCapacity(valueSizes[levels] + 64)
        let entry = 3 + 1 + varintSize(valueSizes[levels]) + valueSizes[levels]
        let structSize = 1 + varintSize(entry) + entry
        body += [0x0A, 0x01, UInt8(ascii: "n"), 0x12, 0x01, UInt8(ascii: "p")]
        body += [0x1A] + varint(structSize)
        body += [0x0A] + varint(entry) + [0x0A, 0x01, UInt8(ascii: "k"), 0x12] + varint(valueSizes[levels])
        for i in stride(from: levels, to: 0, by: -1) {
            let list = 1 + varintSize(valueSizes[i - 1]) + valueSizes[i - 1]
            body += [0x32] + varint(list) + [0x0A] + varint(valueSizes[i - 1])
        }
        let error = #expect(throws: GatewayError.self) {
            try InstillCodec.decodeTriggerRequest(ByteBuffer(bytes: body), release: false, maxBatch: 32)
        }
        #expect(error?.code == .invalidArgument)
    }

    private func varintSize(_ n: Int) -> Int { varint(n).count }

    private func varint(_ n: Int) -> [UInt8] {
        var n = UInt64(n)
        var out: [UInt8] = []
        while n >= 0x80 {
            out.append(UInt8(n & 0x7F) | 0x80)
            n >>= 7
        }
        out.append(UInt8(n))
        return out
    }
}
