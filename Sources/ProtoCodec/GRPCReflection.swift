import CTriggerProtos
package import NIOCore
import TriggerModel

/// The descriptors gRPC server reflection serves: a `google.protobuf.FileDescriptorSet` indexed by file name
/// and by fully-qualified symbol.
///
/// ``gateway`` is built once from the set `scripts/regen-protos.sh` generates (the gateway's public services
/// and every file they import, as `protoc --include_imports` writes them), so reflection describes exactly
/// the protos the codecs were generated from.
package struct GRPCReflectionIndex: Sendable {
    struct File: Sendable {
        /// The serialized `google.protobuf.FileDescriptorProto`.
        var bytes: ByteBuffer
        /// The names of the files it imports, in declaration order.
        var dependencies: [String]
    }

    /// By file name as imported (`pipeline/pipeline/v1beta/pipeline.proto`).
    var files: [String: File] = [:]
    /// Fully-qualified symbol (no leading dot) → the name of the file declaring it: messages (nested too),
    /// fields, oneofs, enums, enum values (in the enum's parent scope, as protobuf scopes them), services,
    /// methods (`package.Service.Method`) and extensions.
    var symbols: [String: String] = [:]
    /// Fully-qualified message type names: the types whose extension numbers may be asked for.
    var messageTypes: Set<String> = []
    /// Extendee (fully-qualified, no leading dot) → field number → declaring file.
    var extensions: [String: [Int32: String]] = [:]
    /// Fully-qualified service names, sorted.
    package private(set) var services: [String] = []
    /// Every method as its gRPC `:path` (`/package.Service/Method`), sorted.
    package private(set) var methodPaths: [String] = []

    /// The gateway's own descriptors (`public_services.desc.c`, generated). A set that does not parse is a
    /// build defect, caught by the unit tests.
    package static let gateway: GRPCReflectionIndex = {
        var size = 0
        let base = trigger_public_descriptor_set(&size)!
        do {
            return try GRPCReflectionIndex(descriptorSet: UnsafeRawBufferPointer(start: base, count: size))
        } catch {
            fatalError("the generated descriptor set does not parse: \(error)")
        }
    }()

    /// Indexes a serialized `FileDescriptorSet`. Throws `.invalidArgument` when it does not parse.
    package init(descriptorSet: UnsafeRawBufferPointer) throws {
        try ProtoMessage.withUnpacked(
            raw: descriptorSet,
            as: "google.protobuf.FileDescriptorSet",
            unpack: google__protobuf__file_descriptor_set__unpack,
            free: google__protobuf__file_descriptor_set__free_unpacked
        ) { set in
            for i in 0..<set.pointee.n_file {
                add(file: set.pointee.file[i]!)
            }
        }
        services.sort()
        methodPaths.sort()
    }

    private mutating func add(file: UnsafeMutablePointer<Google__Protobuf__FileDescriptorProto>) {
        let f = file.pointee
        let name = StructCodec.string(f.name)
        let package = StructCodec.string(f.package)
        let scope = package.isEmpty ? "" : package + "."
        files[name] = File(
            bytes: ProtoMessage.pack(file),
            dependencies: (0..<f.n_dependency).map { StructCodec.string(f.dependency[$0]) }
        )
        for i in 0..<f.n_message_type { add(message: f.message_type[i]!.pointee, scope: scope, file: name) }
        for i in 0..<f.n_enum_type { add(enum: f.enum_type[i]!.pointee, scope: scope, file: name) }
        for i in 0..<f.n_extension { add(extension: f.extension[i]!.pointee, scope: scope, file: name) }
        for i in 0..<f.n_service {
            let service = f.service[i]!.pointee
            let serviceName = scope + StructCodec.string(service.name)
            symbols[serviceName] = name
            services.append(serviceName)
            for j in 0..<service.n_method {
                let method = StructCodec.string(service.method[j]!.pointee.name)
                symbols[serviceName + "." + method] = name
                methodPaths.append("/\(serviceName)/\(method)")
            }
        }
    }

    private mutating func add(message: Google__Protobuf__DescriptorProto, scope: String, file: String) {
        let full = scope + StructCodec.string(message.name)
        symbols[full] = file
        messageTypes.insert(full)
        let inner = full + "."
        for i in 0..<message.n_field { symbols[inner + StructCodec.string(message.field[i]!.pointee.name)] = file }
        for i in 0..<message.n_oneof_decl {
            symbols[inner + StructCodec.string(message.oneof_decl[i]!.pointee.name)] = file
        }
        for i in 0..<message.n_nested_type { add(message: message.nested_type[i]!.pointee, scope: inner, file: file) }
        for i in 0..<message.n_enum_type { add(enum: message.enum_type[i]!.pointee, scope: inner, file: file) }
        for i in 0..<message.n_extension { add(extension: message.extension[i]!.pointee, scope: inner, file: file) }
    }

    private mutating func add(enum e: Google__Protobuf__EnumDescriptorProto, scope: String, file: String) {
        symbols[scope + StructCodec.string(e.name)] = file
        // Enum values are siblings of their enum, not children (protobuf's C++ scoping rule).
        for i in 0..<e.n_value { symbols[scope + StructCodec.string(e.value[i]!.pointee.name)] = file }
    }

    private mutating func add(extension field: Google__Protobuf__FieldDescriptorProto, scope: String, file: String) {
        symbols[scope + StructCodec.string(field.name)] = file
        var extendee = Substring(StructCodec.string(field.extendee))
        if extendee.first == "." { extendee = extendee.dropFirst() }
        extensions[String(extendee), default: [:]][field.number] = file
    }
}

/// One `ServerReflectionInfo` call of gRPC server reflection (grpc/grpc doc/server-reflection.md): turns each
/// serialized `ServerReflectionRequest` into its `ServerReflectionResponse`. Versions `grpc.reflection.v1`
/// and `v1alpha` share these messages field for field, so one responder serves both.
///
/// The answers follow grpc-go's `reflection` package, which grpcurl is written against:
/// - `file_by_filename`, `file_containing_symbol`, `file_containing_extension`: the file, then its imports
///   transitively (breadth first), leaving out files already sent on this call (the proto allows it), but
///   always the file asked for. An unknown name: an `error_response` with NOT_FOUND (5).
/// - `all_extension_numbers_of_type`: the type's extension numbers, sorted (none today: the public protos
///   declare no extensions); NOT_FOUND for a type that is not a known message.
/// - `list_services`: every service of the index.
/// - a request with none of these set: the call fails with INVALID_ARGUMENT (a thrown error), as in
///   grpc-go; so does a message that does not parse.
/// Each response echoes `host` as `valid_host` and the request as `original_request`.
package struct GRPCReflectionResponder {
    package let index: GRPCReflectionIndex
    /// Files sent on this call so far.
    private var sentFiles: Set<String> = []

    package init(index: GRPCReflectionIndex = .gateway) {
        self.index = index
    }

    /// The response to one request. Throws `.invalidArgument` for a request that does not parse or asks
    /// for nothing; every other failure is an `error_response` inside the returned message.
    package mutating func respond(to request: ByteBuffer) throws -> ByteBuffer {
        try ProtoMessage.withUnpacked(
            request,
            as: "grpc.reflection.v1.ServerReflectionRequest",
            unpack: grpc__reflection__v1__server_reflection_request__unpack,
            free: grpc__reflection__v1__server_reflection_request__free_unpacked
        ) { request in
            let answer = try answer(request.pointee)
            return withProtoArena { arena in
                let response: UnsafeMutablePointer<Grpc__Reflection__V1__ServerReflectionResponse> =
                    arena.message(grpc__reflection__v1__server_reflection_response__init)
                response.pointee.valid_host = request.pointee.host
                // Packing only reads the tree, so the unpacked request can be echoed without a copy.
                response.pointee.original_request = UnsafeMutablePointer(mutating: request)
                encode(answer, into: response, arena: arena)
                return ProtoMessage.pack(response)
            }
        }
    }

    private enum Answer {
        case files([ByteBuffer])
        case extensionNumbers(type: String, [Int32])
        case services([String])
        case notFound(String)
    }

    private mutating func answer(_ request: Grpc__Reflection__V1__ServerReflectionRequest) throws -> Answer {
        switch request.message_request_case {
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
            let name = StructCodec.string(request.file_by_filename)
            guard index.files[name] != nil else { return .notFound("file \"\(name)\" not found") }
            return .files(filesToSend(startingWith: name))
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
            let symbol = StructCodec.string(request.file_containing_symbol)
            guard let file = index.symbols[symbol] else { return .notFound("symbol \"\(symbol)\" not found") }
            return .files(filesToSend(startingWith: file))
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
            let type = StructCodec.string(request.file_containing_extension?.pointee.containing_type)
            let number = request.file_containing_extension?.pointee.extension_number ?? 0
            guard let file = index.extensions[type]?[number] else {
                return .notFound("extension \(number) of \"\(type)\" not found")
            }
            return .files(filesToSend(startingWith: file))
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
            let type = StructCodec.string(request.all_extension_numbers_of_type)
            guard index.messageTypes.contains(type) else { return .notFound("message type \"\(type)\" not found") }
            return .extensionNumbers(type: type, (index.extensions[type]?.keys).map { $0.sorted() } ?? [])
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
            return .services(index.services)
        default:
            throw GatewayError(.invalidArgument, "ServerReflectionRequest sets none of its message_request fields")
        }
    }

    /// `name`, then the files it imports transitively, breadth first, minus those already sent on this call.
    private mutating func filesToSend(startingWith name: String) -> [ByteBuffer] {
        var out: [ByteBuffer] = []
        var queue = [name]
        var next = 0
        while next < queue.count {
            let current = queue[next]
            next += 1
            // A dependency outside the set cannot happen with --include_imports; skip rather than trap.
            guard let file = index.files[current] else { continue }
            if out.isEmpty || !sentFiles.contains(current) {
                sentFiles.insert(current)
                out.append(file.bytes)
            }
            for dependency in file.dependencies where !queue.contains(dependency) { queue.append(dependency) }
        }
        return out
    }

    private func encode(
        _ answer: Answer,
        into response: UnsafeMutablePointer<Grpc__Reflection__V1__ServerReflectionResponse>,
        arena: ProtoArena
    ) {
        switch answer {
        case .files(let files):
            let m: UnsafeMutablePointer<Grpc__Reflection__V1__FileDescriptorResponse> =
                arena.message(grpc__reflection__v1__file_descriptor_response__init)
            (m.pointee.n_file_descriptor_proto, m.pointee.file_descriptor_proto) = arena.repeated(files) {
                arena.binary($0)
            }
            response.pointee.message_response_case =
                GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE
            response.pointee.file_descriptor_response = m
        case .extensionNumbers(let type, let numbers):
            let m: UnsafeMutablePointer<Grpc__Reflection__V1__ExtensionNumberResponse> =
                arena.message(grpc__reflection__v1__extension_number_response__init)
            m.pointee.base_type_name = arena.cString(type)
            (m.pointee.n_extension_number, m.pointee.extension_number) = arena.repeated(numbers) { $0 }
            response.pointee.message_response_case =
                GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE
            response.pointee.all_extension_numbers_response = m
        case .services(let names):
            let m: UnsafeMutablePointer<Grpc__Reflection__V1__ListServiceResponse> =
                arena.message(grpc__reflection__v1__list_service_response__init)
            (m.pointee.n_service, m.pointee.service) = arena.repeated(names) { name in
                let service: UnsafeMutablePointer<Grpc__Reflection__V1__ServiceResponse> =
                    arena.message(grpc__reflection__v1__service_response__init)
                service.pointee.name = arena.cString(name)
                return service
            }
            response.pointee.message_response_case =
                GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE
            response.pointee.list_services_response = m
        case .notFound(let message):
            let m: UnsafeMutablePointer<Grpc__Reflection__V1__ErrorResponse> =
                arena.message(grpc__reflection__v1__error_response__init)
            m.pointee.error_code = Int32(GatewayError.Code.notFound.rpcCode)
            m.pointee.error_message = arena.cString(message)
            response.pointee.message_response_case =
                GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE
            response.pointee.error_response = m
        }
    }
}
