package import NIOCore
package import TriggerModel

/// The JSON body of a REST trigger (API.md §2): `{"data":[{"variable":{...},"secret":{...}}]}`, or the legacy
/// `{"inputs":[{...}]}` whose elements are the variables themselves. `data` wins when both are present; other
/// top-level keys are ignored.
///
/// Also used for the `data` array of the HTTP backend hop, which has the same element shape.
package enum RESTTriggerBody {
    /// Decodes the batch of a trigger body, taking the body over: large data URIs are decoded into its own
    /// storage (`JSONValueCodec.decodeObject(inPlace:)`), or with `keepCanonicalBase64` (a request for an
    /// http runner) kept as their canonical base64 text when they are canonical; `checkedAlphabet`: memory of
    /// `body` already found in base64's standard alphabet (`JSONValueCodec.decodeObject(inPlace:)`).
    ///
    /// - Throws: `GatewayError(.invalidArgument)` for malformed JSON, a body that is not an object, a missing,
    ///   empty or non-array batch, a batch over `limits.maxBatch`, elements of the wrong shape, or a data URI
    ///   whose payload is not base64.
    package static func decode(
        json body: consuming ByteBuffer, limits: CodecLimits, keepCanonicalBase64: Bool = false,
        checkedAlphabet: Range<UInt>? = nil
    ) throws -> [TriggerInput] {
        let object = try JSONValueCodec.decodeObject(
            inPlace: body, limits: limits, what: "request body", keepCanonicalBase64: keepCanonicalBase64,
            checkedAlphabet: checkedAlphabet)
        return try inputs(of: object, limits: limits)
    }

    /// As `decode(json:limits:keepCanonicalBase64: true, checkedAlphabet:)`, for a sync or streamed trigger for an
    /// http runner: a body in canonical form (`RESTRequestPassthrough`) keeps its batch as the runner's `data`
    /// elements (`TriggerBatch.httpRunData`), its inputs decoded only if something reads them (issue 11). Any
    /// other body is decoded now, with the same inputs or error either way.
    ///
    /// - Throws: as `decode(json:limits:keepCanonicalBase64:checkedAlphabet:)`.
    package static func decodeBatch(
        json body: consuming ByteBuffer, limits: CodecLimits, checkedAlphabet: Range<UInt>? = nil
    ) throws -> TriggerBatch {
        if let carried = RESTRequestPassthrough.batch(of: body, limits: limits) {
            return TriggerBatch(httpRunData: carried.runnerData, source: carried.document, decode: decodeCarried)
        }
        return TriggerBatch(
            try decode(json: body, limits: limits, keepCanonicalBase64: true, checkedAlphabet: checkedAlphabet))
    }

    /// The inputs of a `RESTRequestPassthrough.Batch.document`: a closure without captures, so a batch allocates
    /// no context for it. The scan accepted the client's body within its limits, so none is checked again.
    private static let decodeCarried: @Sendable (ByteBuffer) -> [TriggerInput] = { document in
        let unlimited = CodecLimits(maxBodyBytes: .max, maxBatch: .max, maxDepth: .max, maxJSONMembers: .max)
        do {
            return try decode(json: document, limits: unlimited, keepCanonicalBase64: true)
        } catch {
            // Unreachable: the document is the runner's elements of a body the scan accepted, which decodes.
            assertionFailure("a canonical trigger body failed to decode: \(error)")
            return []
        }
    }

    /// The batch of an already decoded body object.
    package static func inputs(of body: ValueObject, limits: CodecLimits) throws -> [TriggerInput] {
        let key: String
        let value: Value
        if let data = body["data"], data != .null {
            (key, value) = ("data", data)
        } else if let inputs = body["inputs"], inputs != .null {
            (key, value) = ("inputs", inputs)
        } else {
            throw GatewayError(.invalidArgument, "request body has no \"data\" array (nor a legacy \"inputs\" array)")
        }
        guard case .list(let elements) = value else {
            throw GatewayError(.invalidArgument, "\(key) must be an array, found \(describe(value))")
        }
        guard !elements.isEmpty else {
            throw GatewayError(.invalidArgument, "\(key) is empty: a trigger needs at least one batch element")
        }
        guard elements.count <= limits.maxBatch else {
            throw GatewayError(
                .invalidArgument,
                "\(key) has \(elements.count) elements, more than the batch limit of \(limits.maxBatch)"
            )
        }
        var inputs: [TriggerInput] = []
        inputs.reserveCapacity(elements.count)
        for (i, element) in elements.enumerated() {
            guard case .object(let item) = element else {
                throw GatewayError(.invalidArgument, "\(key)[\(i)] must be an object, found \(describe(element))")
            }
            if key == "inputs" {
                inputs.append(TriggerInput(variables: item))
            } else {
                inputs.append(try dataElement(item, index: i))
            }
        }
        return inputs
    }

    /// One `{"variable":{...},"secret":{"k":"v"}}` (element `index` of `data`); either member may be absent or null.
    static func dataElement(_ item: ValueObject, index: Int) throws -> TriggerInput {
        // Its path (`data[0]`) only for an error: interpolated for every element, it cost ~490 instructions per REST
        // trigger (issue 11).
        var path: String { "data[\(index)]" }
        var input = TriggerInput()
        switch item["variable"] {
        case nil, .null?: break
        case .object(let variables)?: input.variables = variables
        case let other?:
            throw GatewayError(.invalidArgument, "\(path).variable must be an object, found \(describe(other))")
        }
        switch item["secret"] {
        case nil, .null?: break
        case .object(let secrets)?:
            for (name, value) in secrets {
                guard case .string(let secret) = value else {
                    throw GatewayError(
                        .invalidArgument,
                        "\(path).secret.\(name) must be a string, found \(describe(value))"
                    )
                }
                // Secrets go on to grpc runners as protobuf-c `char *`, which ends at a NUL: refused here as a
                // gRPC client's is (`WireDepthGuard`), not cut on that hop (review 59, L10).
                guard !name.utf8.contains(0), !secret.utf8.contains(0) else {
                    throw GatewayError(
                        .invalidArgument,
                        "\(path).secret.\(name.replacing("\u{0}", with: "\\u0000")) holds a NUL byte, which this "
                            + "gateway cannot carry in a secret")
                }
                input.secrets[name] = secret
            }
        case let other?:
            throw GatewayError(.invalidArgument, "\(path).secret must be an object, found \(describe(other))")
        }
        return input
    }

    /// "an object", "a string", ... for error messages.
    static func describe(_ value: Value) -> String {
        switch value {
        case .null: "null"
        case .bool: "a boolean"
        case .number, .largeInteger: "a number"
        case .string: "a string"
        case .list: "an array"
        case .object: "an object"
        case .blob: "a binary (data URI)"
        }
    }
}
