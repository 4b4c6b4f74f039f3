import SeededRandom
import NIOCore
import Testing
import TriggerModel
import WireCodecs

@testable import ProtoCodec
import TestScheduling

/// An Instill trigger request whose batch goes to a grpc runner as the client's own bytes, renumbered (issue
/// 11): only when the `RunRequest` is then what decoding and re-encoding would send, with the same model or
/// error for everything else. Each rule of `InstillRequestPassthrough` is tried at its edge: the last form that
/// passes through and the first that is decoded instead. (The value rules the response passthrough shares,
/// `ValueWireTranscoder`'s, are tried at their edges in `InstillResponsePassthroughTests`; here those whose
/// tags or meaning differ in the Instill form.)
@Suite("Trigger request passthrough to grpc runners")
struct InstillRequestPassthroughTests {
    static let maxBatch = 4

    // MARK: Wire helpers (pipeline.proto and struct.proto field numbers)

    static func field(_ tag: UInt8, _ payload: [UInt8]) -> [UInt8] {
        InstillResponsePassthroughTests.field(tag, payload)
    }
    static func id(_ tag: UInt8, _ text: String) -> [UInt8] { field(tag, Array(text.utf8)) }
    static let ids = id(0x0A, "demo") + id(0x12, "echo")
    /// A `data` element (field 4 of a pipeline request) whose `variable` holds `entries`.
    static func data(_ entries: [UInt8]...) -> [UInt8] { field(0x22, field(0x0A, entries.flatMap { $0 })) }
    static func entry(_ key: String, _ value: [UInt8]) -> [UInt8] { field(0x0A, id(0x0A, key) + field(0x12, value)) }
    static func string(_ s: String) -> [UInt8] { id(0x1A, s) }
    static func number(_ d: Double) -> [UInt8] { [0x11] + withUnsafeBytes(of: d.bitPattern.littleEndian, Array.init) }
    static let null: [UInt8] = [0x08, 0x00]
    static let yes: [UInt8] = [0x20, 0x01]
    static func list(_ values: [UInt8]...) -> [UInt8] { field(0x32, values.flatMap { field(0x0A, $0) }) }
    static func nested(_ entries: [UInt8]...) -> [UInt8] { field(0x2A, entries.flatMap { $0 }) }

    /// Both paths for `bytes`: `decodeTriggerBatch` (which may keep the batch as the runner's bytes) and
    /// `decodeTriggerRequest`, how every request was decoded before. Checks that they give the same ref, the same
    /// `RunRequest` (with and without a request id and traces) and the same inputs, or the same error; says
    /// whether the batch was passed through.
    @discardableResult
    static func agree(
        _ bytes: [UInt8], release: Bool = false, maxMembers: Int = .max,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> Bool {
        let buffer = ByteBuffer(bytes: bytes)
        let carried = Result {
            try InstillCodec.decodeTriggerBatch(
                buffer, generation: .pipelinePipelineV1beta, release: release, maxBatch: maxBatch,
                maxMembers: maxMembers)
        }
        let tree = Result {
            try InstillCodec.decodeTriggerRequest(buffer, release: release, maxBatch: maxBatch, maxMembers: maxMembers)
        }
        switch (carried, tree) {
        case (.success(let carried), .success(let reference)):
            #expect(carried.ref == reference.ref, sourceLocation: sourceLocation)
            for (requestID, traces) in [("", false), ("req-1", true), ("cut\u{0}here", false)] {
                var request = TriggerRequest(ref: carried.ref, inputs: [], requestID: requestID, returnTraces: traces)
                var referenceRequest = request
                request.batch = carried.batch
                referenceRequest.inputs = reference.inputs
                let expected = RunnerCodec.encodeRunRequestTree(referenceRequest)
                #expect(RunnerCodec.encodeRunRequest(request) == expected, sourceLocation: sourceLocation)
                let pieces = RunnerCodec.encodeRunRequestPieces(request, headroom: 5)
                #expect(pieces[0].readerIndex == 5, sourceLocation: sourceLocation)
                #expect(
                    pieces.reduce(into: ByteBuffer()) { $0.writeImmutableBuffer($1) } == expected,
                    sourceLocation: sourceLocation)
                // The same inputs, compared through the runner's encoding so that a NaN equals itself.
                referenceRequest.inputs = carried.batch.inputs
                #expect(RunnerCodec.encodeRunRequestTree(referenceRequest) == expected, sourceLocation: sourceLocation)
            }
            return carried.batch.runRequestInputs != nil
        case (.failure(let error), .failure(let reference)):
            #expect("\(error)" == "\(reference)", sourceLocation: sourceLocation)
        default:
            Issue.record("the paths disagree: \(carried) vs \(tree)", sourceLocation: sourceLocation)
        }
        return false
    }

    // MARK: Passed through

    /// The response tests' plain object without its data URI (a blob to the Struct decoder), with strings that
    /// only start like one.
    static let plain = ValueObject(
        InstillResponsePassthroughTests.plain.entries.filter { $0.key != "data:" } + [
            (key: "dat", value: .string("data")), (key: "d:", value: .string("dat:a")),
        ])

    @Test(
        "Requests the SDKs' encoder writes, without blobs or secrets, pass through renumbered",
        arguments: [
            [[ValueObject()]], [[plain]], [[plain, ValueObject(), plain, plain]],
            [[ValueObject([(key: "long", value: .string(String(repeating: "x", count: 300)))])]],
        ] as [[[ValueObject]]]
    )
    func passedThrough(batch: [[ValueObject]]) throws {
        for variables in batch {
            let inputs = variables.map { TriggerInput(variables: $0) }
            for ref in [
                PipelineRef(namespace: "demo", pipeline: "echo"),
                PipelineRef(namespace: "ns-é", pipeline: "p", release: "v1.0.0"),
            ] {
                let bytes = InstillCodec.encodeTriggerRequest(ref: ref, inputs: inputs)
                #expect(try Self.agree(Array(buffer: bytes), release: ref.release != nil))
                let decoded = try InstillCodec.decodeTriggerBatch(
                    bytes, generation: .vdpPipelineV1beta, release: ref.release != nil, maxBatch: Self.maxBatch)
                #expect(decoded.ref == ref)
                #expect(decoded.batch.inputs == inputs)
            }
        }
    }

    @Test("The Python SDK's request passes through; the 2026 generation is always decoded")
    func sdkRequest() throws {
        // pipeline.pipeline.v1beta, as instill-sdk 0.18 sends it (FuzzSeeds.sdkTriggerRequest).
        let sdk = Self.ids + Self.data(Self.entry("prompt", Self.string("hello world")))
        #expect(try Self.agree(sdk))
        let named = try InstillCodec.decodeTriggerBatch(
            InstillCodec.encodeNamedTriggerRequest(
                ref: PipelineRef(namespace: "demo", pipeline: "echo"),
                inputs: [TriggerInput(variables: ["a": .null])]),
            generation: .pipelineV1beta, release: false, maxBatch: Self.maxBatch)
        #expect(named.batch.runRequestInputs == nil)
        #expect(named.batch.inputs == [TriggerInput(variables: ["a": .null])])
    }

    @Test("Reading the inputs decodes the client's message once; changing them drops the passed-through bytes")
    func lazyInputs() throws {
        let inputs = [TriggerInput(variables: Self.plain)]
        let bytes = InstillCodec.encodeTriggerRequest(ref: PipelineRef(namespace: "n", pipeline: "p"), inputs: inputs)
        let decoded = try InstillCodec.decodeTriggerBatch(
            bytes, generation: .pipelinePipelineV1beta, release: false, maxBatch: Self.maxBatch)
        var request = TriggerRequest(ref: decoded.ref, inputs: [])
        request.batch = decoded.batch
        #expect(request.batch.runRequestInputs != nil)
        #expect(request.inputs == inputs)
        #expect(request.batch.runRequestInputs != nil)
        #expect(request == TriggerRequest(ref: decoded.ref, inputs: inputs))
        request.inputs[0].variables["added"] = .bool(true)
        #expect(request.batch.runRequestInputs == nil)
        #expect(request.inputs[0].variables.count == Self.plain.count + 1)
        #expect(RunnerCodec.encodeRunRequest(request) == RunnerCodec.encodeRunRequestTree(request))
    }

    // MARK: Each rule at its edge

    @Test("Ids: each once, not empty, well-formed UTF-8 without NUL; a release request needs its release_id")
    func ids() throws {
        let data = Self.data(Self.entry("a", Self.null))
        #expect(try Self.agree(Self.ids + data))
        #expect(try Self.agree(data + Self.id(0x12, "echo") + Self.id(0x0A, "demo")))  // any order
        #expect(try !Self.agree(Self.id(0x12, "echo") + data))  // no namespace: refused on both paths
        #expect(try !Self.agree(Self.id(0x0A, "demo") + data))
        #expect(try !Self.agree(Self.id(0x0A, "") + Self.id(0x12, "echo") + data))
        #expect(try !Self.agree(Self.ids + Self.id(0x0A, "other") + data))  // the last one wins when decoding
        #expect(try !Self.agree(Self.field(0x0A, [0x64, 0x00]) + Self.id(0x12, "echo") + data))
        #expect(try !Self.agree(Self.field(0x0A, [0xC3, 0x28]) + Self.id(0x12, "echo") + data))
        let releaseData = Self.field(0x2A, Self.field(0x0A, Self.entry("a", Self.null)))
        #expect(try Self.agree(Self.ids + Self.id(0x1A, "v1") + releaseData, release: true))
        #expect(try !Self.agree(Self.ids + releaseData, release: true))  // release_id is required
        #expect(try !Self.agree(Self.ids + Self.id(0x1A, "") + releaseData, release: true))
        // The pipeline request's field 5 is unknown, the release request's field 4 its legacy inputs.
        #expect(try !Self.agree(Self.ids + releaseData))
        #expect(try !Self.agree(Self.ids + Self.id(0x1A, "v1") + data, release: true))
    }

    @Test("The batch: 1 to maxBatch data elements in one run, each exactly its variable")
    func batch() throws {
        let one = Self.data(Self.entry("a", Self.null))
        func elements(_ n: Int) -> [UInt8] { Self.ids + (0..<n).flatMap { _ in one } }
        #expect(try Self.agree(elements(Self.maxBatch)))
        #expect(try !Self.agree(elements(Self.maxBatch + 1)))  // over the limit: refused on both paths
        #expect(try !Self.agree(Self.ids))  // no batch: refused on both paths
        #expect(try !Self.agree(one + Self.id(0x0A, "demo") + one + Self.id(0x12, "echo")))  // not one run
        // An empty variable passes; a missing one is encoded as an empty object, one byte pair longer.
        #expect(try Self.agree(Self.ids + Self.field(0x22, Self.field(0x0A, []))))
        #expect(try !Self.agree(Self.ids + Self.field(0x22, [])))
        // Secrets, connection references, a second variable, an unknown field.
        let secret = Self.field(0x12, Self.id(0x0A, "k") + Self.id(0x12, "v"))
        #expect(try !Self.agree(Self.ids + Self.field(0x22, Self.field(0x0A, []) + secret)))
        #expect(try !Self.agree(Self.ids + Self.field(0x22, Self.field(0x1A, Self.id(0x0A, "k") + Self.id(0x12, "v")))))
        #expect(try !Self.agree(Self.ids + Self.field(0x22, Self.field(0x0A, []) + Self.field(0x0A, []))))
        #expect(try !Self.agree(Self.ids + Self.field(0x22, Self.field(0x0A, []) + [0x20, 0x01])))
        // Legacy inputs, alone or beside data (which wins when decoding).
        let legacy = Self.field(0x1A, Self.entry("a", Self.null))
        #expect(try !Self.agree(Self.ids + legacy))
        #expect(try !Self.agree(Self.ids + one + legacy))
        #expect(try !Self.agree(Self.ids + one + [0x28, 0x01]))  // an unknown varint field
    }

    @Test("Values: the Instill tags, each renumbered; a data URI is a blob for the runner, so it is decoded")
    func values() throws {
        func one(_ value: [UInt8]) throws -> Bool { try Self.agree(Self.ids + Self.data(Self.entry("v", value))) }
        #expect(try one(Self.null))
        #expect(try one(Self.yes))
        #expect(try one([0x20, 0x00]))
        #expect(try !one([0x20, 0x02]))
        #expect(try one(Self.number(-1e300)))
        #expect(try !one(Self.number(.nan)))
        #expect(try !one(Self.number(.infinity)))
        #expect(try !one(Self.number(-.infinity)))
        #expect(try one(Self.string("dat")))
        #expect(try one(Self.list(Self.null, Self.string("x"))))
        #expect(try one(Self.nested(Self.entry("k", Self.yes))))
        #expect(try !one([]))  // no case set
        #expect(try !one(Self.null + Self.yes))
        // The runner's own tags mean other things here: 0x10 (bool) and 0x19 (number) are unknown fields.
        #expect(try !one([0x10, 0x01]))
        #expect(try !one([0x19] + Array(repeating: 0, count: 8)))
        for uri in ["data:text/plain;base64,aGk=", "DATA:,x", "Data:image/png;base64,!!", "data:"] {
            #expect(try !one(Self.string(uri)), "\(uri)")
        }
        // A data URI as a key is a key.
        #expect(try Self.agree(Self.ids + Self.data(Self.entry("data:,x", Self.null))))
    }

    @Test("Keys: distinct as ValueObject compares them")
    func keys() throws {
        func object(_ entries: [UInt8]...) throws -> Bool {
            try Self.agree(Self.ids + Self.data(entries.flatMap { $0 }))
        }
        #expect(try object(Self.entry("a", Self.null), Self.entry("b", Self.null)))
        #expect(try !object(Self.entry("a", Self.null), Self.entry("a", Self.yes)))
        #expect(try !object(Self.entry("é", Self.null), Self.entry("e\u{301}", Self.yes)))
        #expect(try !object(Self.entry("K", Self.null), Self.entry("\u{212A}", Self.yes)))
        #expect(try !object(Self.field(0x0A, [0x0A, 0x00] + Self.field(0x12, Self.null))))  // an explicit empty key
    }

    @Test("Nesting within ProtoLimits.maxNestingDepth passes through; one level more is refused on both paths")
    func depth() throws {
        func nestedLists(_ levels: Int) -> [UInt8] {
            var value = Self.null
            for _ in 0..<(levels - 1) { value = Self.list(value) }
            return Self.ids + Self.data(Self.entry("v", value))
        }
        #expect(try Self.agree(nestedLists(ProtoLimits.maxNestingDepth)))
        #expect(try !Self.agree(nestedLists(ProtoLimits.maxNestingDepth + 1)))
        #expect(throws: GatewayError.self) {
            try InstillCodec.decodeTriggerBatch(
                ByteBuffer(bytes: nestedLists(65)), generation: .pipelinePipelineV1beta, release: false, maxBatch: 4)
        }
    }

    @Test("Struct fields and list values within maxMembers pass through; one more is refused on both paths")
    func memberCap() throws {
        // The entry "v" and `n` list values.
        func wideList(_ n: Int) -> [UInt8] {
            let values = (0..<n).flatMap { _ in Self.field(0x0A, Self.null) }
            return Self.ids + Self.data(Self.entry("v", Self.field(0x32, values)))
        }
        #expect(try Self.agree(wideList(4), maxMembers: 5))
        #expect(try !Self.agree(wideList(5), maxMembers: 5))
        let error = #expect(throws: GatewayError.self) {
            try InstillCodec.decodeTriggerBatch(
                ByteBuffer(bytes: wideList(5)), generation: .pipelinePipelineV1beta, release: false, maxBatch: 4,
                maxMembers: 5)
        }
        #expect(
            error?.message
                == "TriggerNamespacePipelineRequest: more than the limit of 5 struct fields and list values in the message"
        )
    }

    @Test(
        "A Struct of maxMembers fields decodes (the default, 100,000); one more field is refused", .cpuBound,
        arguments: [0, 1])
    func wideStruct(extra: Int) throws {
        let cap = CodecLimits.defaults.maxJSONMembers
        var entries: [UInt8] = []
        entries.reserveCapacity((cap + extra) * 12)
        for i in 0..<(cap + extra) { entries += Self.entry("k\(i)", Self.null) }
        // Over 32 keys: not passed through, decoded (and checked on the wire first).
        let decoded = Result {
            try InstillCodec.decodeTriggerBatch(
                ByteBuffer(bytes: Self.ids + Self.data(entries)), generation: .pipelinePipelineV1beta,
                release: false, maxBatch: 4, maxMembers: cap)
        }
        switch decoded {
        case .success(let decoded):
            #expect(extra == 0 && decoded.batch.inputs.first?.variables.count == cap)
        case .failure(let error):
            #expect(extra == 1)
            #expect(
                (error as? GatewayError)?.message
                    == "TriggerNamespacePipelineRequest: more than the limit of 100000 struct fields and list values in the message"
            )
        }
    }

    @Test("A batch of 32 KiB or more is its own piece of the RunRequest, not copied")
    func largeBatch() throws {
        let text = String(repeating: "x", count: ProtoMessage.sharedBinaryBytes)
        let bytes = Self.ids + Self.data(Self.entry("big", Self.string(text)))
        #expect(try Self.agree(bytes))
        let decoded = try InstillCodec.decodeTriggerBatch(
            ByteBuffer(bytes: bytes), generation: .pipelinePipelineV1beta, release: false, maxBatch: 4)
        var request = TriggerRequest(ref: decoded.ref, inputs: [], requestID: "r")
        request.batch = decoded.batch
        let pieces = RunnerCodec.encodeRunRequestPieces(request, headroom: 5)
        #expect(pieces.count == 2)
        #expect(pieces.last == decoded.batch.runRequestInputs)
    }

    @Test("Mutated requests (bytes flipped, cut, inserted): both paths give the same RunRequest or the same error")
    func mutations() throws {
        var rng = SplitMix64(seed: 12)
        let bases: [(bytes: [UInt8], release: Bool)] = [
            (
                Array(
                    buffer: InstillCodec.encodeTriggerRequest(
                        ref: PipelineRef(namespace: "demo", pipeline: "echo"),
                        inputs: [TriggerInput(variables: Self.plain), TriggerInput()])),
                false
            ),
            (
                Self.ids + Self.id(0x1A, "v1")
                    + Self.field(
                        0x2A,
                        Self.field(
                            0x0A,
                            Self.entry("é", Self.null)
                                + Self.entry("e", Self.list(Self.yes, Self.number(2), Self.string("data"))))),
                true
            ),
        ]
        var passed = 0
        for round in 0..<2000 {
            let base = bases[round % bases.count]
            let bytes = InstillResponsePassthroughTests.mutated(base.bytes, using: &rng)
            if try Self.agree(bytes, release: base.release) { passed += 1 }
        }
        // Some mutations (a changed letter in a string or an id, a flipped bit in a number) keep the canonical form.
        #expect(passed > 0)
    }
}
