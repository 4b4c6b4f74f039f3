import NIOCore
import SeededRandom
import Testing
import TriggerModel
import WireCodecs

@testable import ProtoCodec

/// A grpc runner's stream events carried through to the Instill gRPC client (issue 11): an `OutputEvent` or
/// `EndEvent` whose outputs are in canonical form becomes Instill's stream message by dropping the wrapper and
/// renumbering tags; everything else is decoded as before, with the same event or error.
@Suite("RunEvent passthrough to Instill stream clients")
struct InstillStreamPassthroughTests {
    typealias Wire = InstillResponsePassthroughTests

    /// `RunEvent { output = 2 { … } }` from raw `OutputEvent` fields.
    static func outputEvent(_ fields: [UInt8]...) -> [UInt8] { Wire.field(0x12, fields.flatMap { $0 }) }
    static func name(_ s: String) -> [UInt8] { Wire.field(0x0A, Array(s.utf8)) }
    static func outputs(_ entries: [UInt8]...) -> [UInt8] { Wire.field(0x12, entries.flatMap { $0 }) }

    /// Both paths for `bytes`: `decodeRunEvent` (which may pass the event through) and `decodeRunEventTree`.
    /// Checks they agree and says whether the event carries the Instill message.
    @discardableResult
    static func agree(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) throws -> Bool {
        let buffer = ByteBuffer(bytes: bytes)
        let event = Result { try RunnerCodec.decodeRunEvent(buffer) }
        let reference = Result { try RunnerCodec.decodeRunEventTree(buffer) }
        switch (event, reference) {
        case (.success(let event), .success(let tree)):
            // The runner's encoding compares outputs so that a NaN equals itself.
            #expect(
                RunnerCodec.encodeRunEvent(event) == RunnerCodec.encodeRunEvent(tree), sourceLocation: sourceLocation)
            func same(_ result: TriggerResult, _ treeResult: TriggerResult) -> Bool {
                #expect(
                    InstillCodec.encodeTriggerResponse(result)
                        == InstillCodec.encodeTriggerResponseTree(treeResult),
                    sourceLocation: sourceLocation)
                // Framed (in place when the event left room for the prefix) as a copy of the message would be.
                if let message = result.instillProto {
                    #expect(
                        GRPCMessageFramer.frame(message)
                            == GRPCMessageFramer.frame(ByteBuffer(bytes: Array(buffer: message))),
                        sourceLocation: sourceLocation)
                }
                return result.instillProto != nil
            }
            switch (event, tree) {
            case (.output(let name, let result), .output(let treeName, let treeResult)):
                #expect(name == treeName, sourceLocation: sourceLocation)
                return same(result, treeResult)
            case (.end(let result), .end(let treeResult)):
                return same(result, treeResult)
            default:
                #expect(event == tree, sourceLocation: sourceLocation)
            }
        case (.failure(let error), .failure(let tree)):
            #expect("\(error)" == "\(tree)", sourceLocation: sourceLocation)
        default:
            Issue.record("the paths disagree: \(event) vs \(reference)", sourceLocation: sourceLocation)
        }
        return false
    }

    @Test(
        "Output events the runner's encoder writes without blobs pass through as Instill's stream message",
        arguments: [
            [], [ValueObject()], [InstillResponsePassthroughTests.plain],
            [InstillResponsePassthroughTests.plain, ValueObject(), InstillResponsePassthroughTests.plain],
        ]
    )
    func outputEvents(outputs: [ValueObject]) throws {
        for name in ["PIPELINE_OUTPUT_UPDATED", "", "événement"] {
            let bytes = RunnerCodec.encodeRunEvent(.output(name: name, outputs: outputs))
            #expect(try Self.agree(Array(buffer: bytes)))
            guard case .output(let decodedName, let result) = try RunnerCodec.decodeRunEvent(bytes) else {
                Issue.record("not an output event")
                continue
            }
            #expect(decodedName == name)
            // What an Instill client decodes (where a "data:" string is a blob) is what it decoded before.
            let before = InstillCodec.encodeTriggerResponseTree(TriggerResult(outputs: outputs))
            #expect(
                try InstillCodec.decodeTriggerResponse(result.instillProto!)
                    == InstillCodec.decodeTriggerResponse(before))
            // Reading the outputs decodes the runner's event.
            #expect(RunnerCodec.encodeRunEvent(.output(name: name, outputs: result.outputs)) == bytes)
        }
    }

    @Test("End events pass through as the unary answer does; status and error events are decoded")
    func endStatusError() throws {
        let plain = InstillResponsePassthroughTests.plain
        let end = RunnerCodec.encodeRunEvent(.end(TriggerResult(outputs: [plain])))
        #expect(try Self.agree(Array(buffer: end)))
        // An end event with traces is decoded (the Instill message would carry metadata).
        var traced = TriggerResult(outputs: [plain])
        traced.metadata = TriggerMetadata(traces: ["c": Trace(statuses: [.completed])])
        #expect(try !Self.agree(Array(buffer: RunnerCodec.encodeRunEvent(.end(traced)))))
        #expect(try !Self.agree(Array(buffer: RunnerCodec.encodeRunEvent(.status(name: "S", data: plain)))))
        let failure = GatewayError(.application(3), "no")
        #expect(try !Self.agree(Array(buffer: RunnerCodec.encodeRunEvent(.error(failure)))))
        #expect(try !Self.agree([]))
        // An end event without a result.
        #expect(try !Self.agree(Wire.field(0x1A, [])))
        // An end event with a field after its result.
        let result = Array(buffer: RunnerCodec.encodeRunResponse(TriggerResult(outputs: [plain])))
        #expect(try Self.agree(Wire.field(0x1A, Wire.field(0x0A, result))))
        #expect(try !Self.agree(Wire.field(0x1A, Wire.field(0x0A, result) + [0x10, 0x01])))
    }

    @Test("Output events: the name first and canonical, then outputs only; anything else is decoded")
    func outputEventFields() throws {
        let object = Wire.entry("k", Wire.string("v"))
        #expect(try Self.agree(Self.outputEvent(Self.name("n"), Self.outputs(object))))
        #expect(try Self.agree(Self.outputEvent(Self.outputs(object), Self.outputs(object))))
        // An explicit empty name decodes as no name.
        #expect(try Self.agree(Self.outputEvent(Self.name(""), Self.outputs(object))))
        // The name after the outputs, twice, with NUL or ill-formed UTF-8.
        #expect(try !Self.agree(Self.outputEvent(Self.outputs(object), Self.name("n"))))
        #expect(try !Self.agree(Self.outputEvent(Self.name("a"), Self.name("b"), Self.outputs(object))))
        #expect(try !Self.agree(Self.outputEvent(Wire.field(0x0A, [0x61, 0x00]), Self.outputs(object))))
        #expect(try !Self.agree(Self.outputEvent(Wire.field(0x0A, [0xC3]), Self.outputs(object))))
        // An unknown field in the event, two events in one message, a field after the event.
        #expect(try !Self.agree(Self.outputEvent(Self.outputs(object), [0x18, 0x01])))
        let one = Self.outputEvent(Self.outputs(object))
        #expect(try !Self.agree(one + one))
        #expect(try !Self.agree(one + [0x08, 0x01]))
        // A blob is an Instill data URI: decoded.
        #expect(try !Self.agree(Self.outputEvent(Self.outputs(Wire.entry("b", Wire.field(0x3A, [1, 2]))))))
        // A non-minimal length of the wrapper.
        let payload = Self.outputs(object)
        #expect(try !Self.agree([0x12, UInt8(payload.count) | 0x80, 0x00] + payload))
    }

    @Test("Mutated events (bytes flipped, cut, inserted): both paths give the same event or the same error")
    func mutations() throws {
        var rng = SplitMix64(seed: 12)
        let plain = InstillResponsePassthroughTests.plain
        let bases = [
            Array(buffer: RunnerCodec.encodeRunEvent(.output(name: "PIPELINE_OUTPUT_UPDATED", outputs: [plain]))),
            Array(buffer: RunnerCodec.encodeRunEvent(.end(TriggerResult(outputs: [plain, ValueObject()])))),
            Self.outputEvent(Self.name("é"), Self.outputs(Wire.entry("e", Wire.list(Wire.yes, Wire.number(2))))),
        ]
        var passed = 0
        for round in 0..<3000 {
            let bytes = Wire.mutated(bases[round % bases.count], using: &rng)
            if try Self.agree(bytes) { passed += 1 }
        }
        #expect(passed > 0)
    }
}
