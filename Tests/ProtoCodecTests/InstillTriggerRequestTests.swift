import SeededRandom
import NIOCore
import ProtoCodec
import Testing
import TriggerModel
import TestScheduling

@Suite("Instill trigger requests")
struct InstillTriggerRequestTests {
    /// What the Instill Python SDK sends for `{"prompt": "hello world"}` to namespace ns1, pipeline pipe1.
    static let sdkHex = "0a036e733112057069706531221b0a190a170a0670726f6d7074120d1a0b68656c6c6f20776f726c64"

    @Test("decodes the exact bytes the Instill Python SDK sends")
    func decodesSDKBytes() throws {
        let (ref, inputs) = try InstillCodec.decodeTriggerRequest(
            ByteBuffer(hex: Self.sdkHex),
            release: false,
            maxBatch: 32
        )
        #expect(ref == PipelineRef(namespace: "ns1", pipeline: "pipe1"))
        #expect(inputs.count == 1)
        #expect(inputs[0].variables == ["prompt": .string("hello world")])
        #expect(inputs[0].secrets.isEmpty)
    }

    @Test(
        "protoc encodes the SDK's request to the same bytes, so protos/ matches the real field numbers",
        .enabled(if: Protoc.isAvailable)
    )
    func protocAgreesWithSDK() async throws {
        let bytes = try await Protoc.encode(
            "pipeline.pipeline.v1beta.TriggerNamespacePipelineRequest",
            #"namespace_id: "ns1" pipeline_id: "pipe1" data { variable { fields { key: "prompt" value { string_value: "hello world" } } } }"#
        )
        #expect(bytes.hex == Self.sdkHex)
    }

    @Test("decodes a release request, with secrets, produced by protoc", .enabled(if: Protoc.isAvailable))
    func decodesReleaseRequest() async throws {
        let bytes = try await Protoc.encode(
            "pipeline.pipeline.v1beta.TriggerNamespacePipelineReleaseRequest",
            """
            namespace_id: "acme" pipeline_id: "summarise" release_id: "v1.2.0"
            data {
              variable {
                fields { key: "z" value { number_value: 1.5 } }
                fields { key: "a" value { list_value { values { bool_value: true } values { null_value: NULL_VALUE } } } }
              }
              secret { key: "token" value: "s3cret" }
              connection_references { key: "db" value: "${connection.db}" }
            }
            """
        )
        let (ref, inputs) = try InstillCodec.decodeTriggerRequest(bytes, release: true, maxBatch: 32)
        #expect(ref == PipelineRef(namespace: "acme", pipeline: "summarise", release: "v1.2.0"))
        #expect(inputs.count == 1)
        #expect(inputs[0].variables.keys == ["z", "a"])
        #expect(inputs[0].variables == ["z": .number(1.5), "a": .list([.bool(true), .null])])
        #expect(inputs[0].secrets == ["token": "s3cret"])
    }

    @Test("data wins over the legacy inputs, and inputs are used when data is empty", .enabled(if: Protoc.isAvailable))
    func dataWinsOverInputs() async throws {
        let both = try await Protoc.encode(
            "pipeline.pipeline.v1beta.TriggerNamespacePipelineRequest",
            #"namespace_id: "n" pipeline_id: "p" inputs { fields { key: "legacy" value { bool_value: true } } } data { variable { fields { key: "new" value { bool_value: false } } } }"#
        )
        let fromBoth = try InstillCodec.decodeTriggerRequest(both, release: false, maxBatch: 32).inputs
        #expect(fromBoth.map(\.variables) == [["new": .bool(false)]])

        let legacy = try await Protoc.encode(
            "pipeline.pipeline.v1beta.TriggerNamespacePipelineRequest",
            #"namespace_id: "n" pipeline_id: "p" inputs { fields { key: "legacy" value { bool_value: true } } } inputs { }"#
        )
        let fromLegacy = try InstillCodec.decodeTriggerRequest(legacy, release: false, maxBatch: 32).inputs
        #expect(fromLegacy.map(\.variables) == [["legacy": .bool(true)], [:]])
    }

    @Test("a batch at the limit is accepted and one over it is rejected naming the limit", arguments: [32, 33])
    func batchLimit(size: Int) throws {
        let inputs = (0..<size).map { TriggerInput(variables: ["i": .number(Double($0))]) }
        let bytes = InstillCodec.encodeTriggerRequest(ref: PipelineRef(namespace: "n", pipeline: "p"), inputs: inputs)
        if size <= 32 {
            let decoded = try InstillCodec.decodeTriggerRequest(bytes, release: false, maxBatch: 32)
            #expect(decoded.inputs == inputs)
        } else {
            let error = #expect(throws: GatewayError.self) {
                try InstillCodec.decodeTriggerRequest(bytes, release: false, maxBatch: 32)
            }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains("33") == true)
            #expect(error?.message.contains("limit of 32") == true)
        }
    }

    @Test("missing ids are invalid arguments")
    func missingIDs() throws {
        let noNamespace = InstillCodec.encodeTriggerRequest(ref: PipelineRef(namespace: "", pipeline: "p"), inputs: [])
        #expect(throws: GatewayError(.invalidArgument, "namespace_id is required")) {
            try InstillCodec.decodeTriggerRequest(noNamespace, release: false, maxBatch: 32)
        }
        let noRelease = InstillCodec.encodeTriggerRequest(
            ref: PipelineRef(namespace: "n", pipeline: "p", release: ""),
            inputs: []
        )
        #expect(throws: GatewayError(.invalidArgument, "release_id is required")) {
            try InstillCodec.decodeTriggerRequest(noRelease, release: true, maxBatch: 32)
        }
    }

    /// The SDK's request (`sdkHex`) with one string's bytes replaced, and the field the refusal names.
    @Test(
        "a string that is not UTF-8 is refused naming its field, not repaired with U+FFFD (review 58, L12)",
        arguments: [
            (sdkHex.replacing("68656c6c6f", with: "68656c6cff"), "a string_value is not valid UTF-8"),
            (sdkHex.replacing("68656c6c6f", with: "68656cc328"), "a string_value is not valid UTF-8"),
            (sdkHex.replacing("68656c6c6f", with: "6865eda080"), "a string_value is not valid UTF-8"),
            (sdkHex.replacing("70726f6d7074", with: "70c0af6d7074"), "a Struct key is not valid UTF-8"),
            (sdkHex.replacing("0a036e7331", with: "0a036eff31"), "namespace_id is not valid UTF-8"),
            (
                sdkHex.replacing("12057069706531", with: "120570697065f0"),
                "pipeline_id is not valid UTF-8"
            ),
            (sdkHex.replacing("0a036e7331", with: "0a036e0031"), "namespace_id holds a NUL byte"),
        ]
    )
    func invalidUTF8(hex: String, message: String) throws {
        let error = #expect(throws: GatewayError.self) {
            try InstillCodec.decodeTriggerRequest(ByteBuffer(hex: hex), release: false, maxBatch: 32)
        }
        #expect(error?.code == .invalidArgument)
        #expect(
            error?.message.hasPrefix("TriggerNamespacePipelineRequest: \(message)") == true,
            "\(String(describing: error))")
    }

    @Test(
        "a secret's key or value that is not UTF-8 is refused; two- to four-byte characters pass",
        .enabled(if: Protoc.isAvailable))
    func secretsAndMultibyte() async throws {
        let valid = try await Protoc.encode(
            "pipeline.pipeline.v1beta.TriggerNamespacePipelineRequest",
            #"namespace_id: "n\303\251" pipeline_id: "p" data { variable { fields { key: "\342\202\254" value { string_value: "\360\237\230\200" } } } secret { key: "k" value: "v" } }"#
        )
        let decoded = try InstillCodec.decodeTriggerRequest(valid, release: false, maxBatch: 32)
        #expect(decoded.ref.namespace == "n\u{E9}")
        #expect(decoded.inputs[0].variables == ["\u{20AC}": .string("\u{1F600}")])
        // namespace "n", pipeline "p", one data element: an empty variable and the secret `key: value` (hand-made:
        // protoc will not write a string that is not UTF-8).
        for (key, value, field) in [("ff", "76", "a map key"), ("6b", "ff", "a map value")] {
            let bytes = ByteBuffer(hex: "0a016e" + "120170" + "220a" + "0a00" + "1206" + "0a01" + key + "1201" + value)
            #expect(
                throws: GatewayError(
                    .invalidArgument,
                    "TriggerNamespacePipelineRequest: \(field) is not valid UTF-8 (a protobuf string must be)")
            ) {
                try InstillCodec.decodeTriggerRequest(bytes, release: false, maxBatch: 32)
            }
        }
        let plain = ByteBuffer(hex: "0a016e" + "120170" + "220a" + "0a00" + "1206" + "0a01" + "6b" + "1201" + "76")
        #expect(
            try InstillCodec.decodeTriggerRequest(plain, release: false, maxBatch: 32).inputs[0].secrets == ["k": "v"])
    }

    @Test(
        "garbage is an invalid argument",
        arguments: [
            "ff", "0a", "0a05616263", "0a036e7331120570697065", "22ffffffffffffffffffff01", "0b", "0f00",
            "0a036e7331" + "12057069706531" + "2202" + "0a05", "00", "fa0100",
        ]
    )
    func garbage(hex: String) throws {
        let error = #expect(throws: GatewayError.self) {
            try InstillCodec.decodeTriggerRequest(ByteBuffer(hex: hex), release: false, maxBatch: 32)
        }
        #expect(error?.code == .invalidArgument)
    }

    @Test("random and mutated input never crashes the decoder", .cpuBound)
    func neverCrashes() throws {
        var rng = SplitMix64(seed: 0x5EED)
        let valid = Array(ByteBuffer(hex: Self.sdkHex).readableBytesView)
        for round in 0..<3000 {
            var bytes: [UInt8]
            switch round % 3 {
            case 0:
                bytes = (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            case 1:
                bytes = valid
                for _ in 0..<(1 + rng.next() % 4) {
                    bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
            default:
                bytes = Array(valid.prefix(Int(rng.next() % UInt64(valid.count))))
            }
            for release in [false, true] {
                do {
                    _ = try InstillCodec.decodeTriggerRequest(ByteBuffer(bytes: bytes), release: release, maxBatch: 32)
                } catch let error as GatewayError {
                    #expect(error.code == .invalidArgument)
                }
            }
            _ = try? InstillCodec.decodeGetOperationRequest(ByteBuffer(bytes: bytes))
            _ = try? InstillCodec.decodeTriggerResponse(ByteBuffer(bytes: bytes))
            _ = try? InstillCodec.decodeOperationResponse(ByteBuffer(bytes: bytes))
            _ = InstillCodec.decodeHealthCheckRequest(ByteBuffer(bytes: bytes))
            _ = InstillCodec.decodeGRPCHealthRequest(ByteBuffer(bytes: bytes))
            _ = try? RunnerCodec.decodeRunRequest(ByteBuffer(bytes: bytes))
            _ = try? RunnerCodec.decodeRunResponse(ByteBuffer(bytes: bytes))
            _ = try? RunnerCodec.decodeRunEvent(ByteBuffer(bytes: bytes))
        }
    }
}
