import NIOCore
import ProtoCodec
import Testing
import TriggerModel

/// The reflection responder against protoc as the independent peer: requests are protoc's `--encode` of text
/// format, answers are read back with `--decode` (as `grpc.reflection.v1` and as `v1alpha`).
@Suite("gRPC server reflection responder")
struct GRPCReflectionTests {
    static let publicServices = [
        "core.mgmt.v1beta.MgmtPublicService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "pipeline.pipeline.v1beta.PipelinePublicService",
        "pipeline.v1beta.PipelinePublicService",
        "vdp.pipeline.v1beta.PipelinePublicService",
    ]

    static func request(_ text: String) async throws -> ByteBuffer {
        try await Protoc.encode("grpc.reflection.v1.ServerReflectionRequest", text)
    }

    /// The serialized files of a `file_descriptor_response` (field 4, its field 1), split with a minimal
    /// wire reader so each can be handed to protoc whole.
    static func files(in response: ByteBuffer) throws -> [ByteBuffer] {
        let outer = try WireFields(response)
        let inner = try #require(outer.bytes(4).first, "no file_descriptor_response")
        return try WireFields(inner).bytes(1)
    }

    /// The names of the files of a `file_descriptor_response`, in order.
    static func fileNames(in response: ByteBuffer) async throws -> [String] {
        var names: [String] = []
        for file in try files(in: response) { names.append(try await fileName(file)) }
        return names
    }

    static func fileName(_ file: ByteBuffer) async throws -> String {
        let text = try await Protoc.decode("google.protobuf.FileDescriptorProto", file)
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("name: ") })
        return String(line.dropFirst("name: \"".count).dropLast())
    }

    @Test("the index holds the public services (three Instill generations) and every file they import")
    func indexCoversImports() throws {
        let index = GRPCReflectionIndex.gateway
        #expect(index.services == Self.publicServices)
        #expect(!index.services.contains("trigger.runner.v1.Runner"), "the backends' protocol is not public")
        #expect(index.methodPaths.contains("/pipeline.pipeline.v1beta.PipelinePublicService/TriggerNamespacePipeline"))
    }

    @Test(
        "list_services names every service; host and request are echoed (read as v1 and as v1alpha)",
        .enabled(if: Protoc.isAvailable))
    func listServices() async throws {
        var responder = GRPCReflectionResponder()
        let response = try responder.respond(to: try await Self.request(#"host: "gw:1" list_services: "*""#))
        for package in ["grpc.reflection.v1", "grpc.reflection.v1alpha"] {
            let text = try await Protoc.decode("\(package).ServerReflectionResponse", response)
            #expect(
                text.hasPrefix("valid_host: \"gw:1\"\noriginal_request {\n  host: \"gw:1\"\n  list_services: \"*\"\n}"))
            let names = text.split(separator: "\n").filter { $0.contains("name: ") }.map {
                String($0.split(separator: "\"")[1])
            }
            #expect(names == Self.publicServices, "\(text)")
        }
    }

    @Test(
        "file_containing_symbol: the file, then its imports breadth first; a second ask omits what was sent",
        .enabled(if: Protoc.isAvailable))
    func fileContainingSymbolWithImports() async throws {
        var responder = GRPCReflectionResponder()
        let first = try responder.respond(
            to: try await Self.request(#"file_containing_symbol: "pipeline.pipeline.v1beta.PipelinePublicService""#))
        let names = try await Self.fileNames(in: first)
        #expect(
            names == [
                "pipeline/pipeline/v1beta/pipeline_public_service.proto",
                "pipeline/pipeline/v1beta/pipeline.proto",
                "common/healthcheck/v1beta/healthcheck.proto",
                "common/run/v1alpha/run.proto",
                "google/longrunning/operations.proto",
                "google/protobuf/struct.proto",
                "google/protobuf/timestamp.proto",
                "google/protobuf/any.proto",
                "google/rpc/status.proto",
            ])
        // Already sent on this call: only the file asked for comes again (grpc-go does the same).
        let again = try responder.respond(
            to: try await Self.request(
                #"file_containing_symbol: "pipeline.pipeline.v1beta.TriggerNamespacePipelineRequest""#)
        )
        #expect(try await Self.fileNames(in: again) == ["pipeline/pipeline/v1beta/pipeline.proto"])
        // A new call starts afresh.
        var other = GRPCReflectionResponder()
        let fresh = try other.respond(to: try await Self.request(#"file_by_filename: "google/rpc/status.proto""#))
        #expect(
            try await Self.fileNames(in: fresh) == ["google/rpc/status.proto", "google/protobuf/any.proto"])
    }

    @Test(
        "symbols: methods, fields, nested enums and their values (in the enum's parent scope)",
        .enabled(if: Protoc.isAvailable),
        arguments: [
            ("grpc.health.v1.Health.Watch", "grpc/health/v1/health.proto"),
            ("grpc.health.v1.HealthCheckRequest.service", "grpc/health/v1/health.proto"),
            ("grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"),
            ("grpc.health.v1.HealthCheckResponse.SERVICE_UNKNOWN", "grpc/health/v1/health.proto"),
            ("grpc.reflection.v1alpha.ServerReflection", "grpc/reflection/v1alpha/reflection.proto"),
            ("core.mgmt.v1beta.MgmtPublicService.Readiness", "core/mgmt/v1beta/mgmt_public_service.proto"),
            ("google.protobuf.Struct", "google/protobuf/struct.proto"),
        ])
    func symbols(symbol: String, file: String) async throws {
        var responder = GRPCReflectionResponder()
        let response = try responder.respond(to: try await Self.request("file_containing_symbol: \"\(symbol)\""))
        #expect(try await Self.fileNames(in: response).first == file)
    }

    @Test(
        "unknown names are an error_response with NOT_FOUND; extensions: none, known types answer empty",
        .enabled(if: Protoc.isAvailable),
        arguments: [
            (#"file_containing_symbol: "pipeline.pipeline.v1beta.Nope""#, true),
            (#"file_containing_symbol: ".grpc.health.v1.Health""#, true),
            (#"file_by_filename: "trigger/runner/v1/runner.proto""#, true),
            (#"file_containing_extension { containing_type: "google.protobuf.Struct" extension_number: 100 }"#, true),
            (#"all_extension_numbers_of_type: "grpc.health.v1.Nope""#, true),
            (#"all_extension_numbers_of_type: "grpc.health.v1.HealthCheckRequest""#, false),
        ])
    func notFound(request: String, notFound: Bool) async throws {
        var responder = GRPCReflectionResponder()
        let text = try await Protoc.decode(
            "grpc.reflection.v1.ServerReflectionResponse", try responder.respond(to: try await Self.request(request)))
        if notFound {
            #expect(text.contains("error_response {\n  error_code: 5\n  error_message: "), "\(text)")
        } else {
            #expect(
                text.hasSuffix(
                    "all_extension_numbers_response {\n  base_type_name: \"grpc.health.v1.HealthCheckRequest\"\n}\n"),
                "\(text)")
        }
    }

    @Test(
        "a request that asks for nothing, or is not a message, fails the call with INVALID_ARGUMENT",
        arguments: [[], [0x0A, 0x05, 0x61]] as [[UInt8]])
    func invalidRequest(bytes: [UInt8]) throws {
        var responder = GRPCReflectionResponder()
        let error = #expect(throws: GatewayError.self) { _ = try responder.respond(to: ByteBuffer(bytes: bytes)) }
        #expect(error?.code == .invalidArgument)
    }
}

/// The length-delimited fields of one protobuf message, by number (a test's own reader: only varint and
/// length-delimited wire types, which is all reflection responses use).
struct WireFields {
    private var fields: [(number: Int, value: ByteBuffer)] = []

    init(_ message: ByteBuffer) throws {
        var buffer = message
        while buffer.readableBytes > 0 {
            let key = try Self.varint(&buffer)
            switch key & 7 {
            case 0: _ = try Self.varint(&buffer)
            case 2:
                let length = Int(try Self.varint(&buffer))
                guard let value = buffer.readSlice(length: length) else { throw WireError() }
                fields.append((Int(key >> 3), value))
            default: throw WireError()
            }
        }
    }

    func bytes(_ number: Int) -> [ByteBuffer] { fields.filter { $0.number == number }.map(\.value) }

    private static func varint(_ buffer: inout ByteBuffer) throws -> UInt64 {
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 64, by: 7) {
            guard let byte = buffer.readInteger(as: UInt8.self) else { throw WireError() }
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
        }
        throw WireError()
    }

    struct WireError: Error {}
}
