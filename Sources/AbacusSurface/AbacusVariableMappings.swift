import NIOCore
package import TriggerModel
package import WireCodecs

/// `pipelineVariableMappings` ↔ a run's input variables (CLIENTS.md §4.3).
///
/// **Decoding** (`runPipeline`): each mapping is an object naming one input variable. The client sends the
/// items exactly as the caller built them, so every field is read in camelCase or snake_case: `name`,
/// `variableType` / `variable_type`, `value`, `isRequired` / `is_required` (default true, as in the client's
/// `PythonFunctionArgument`), `pipelineVariable` / `pipeline_variable` (the variable's name when `name` is
/// absent), `itemType` / `item_type` (the type of a LIST's items), `description`, `longDescription` /
/// `long_description` (read and ignored). Unknown keys are ignored, as the client ignores them in answers.
///
/// The `value` is typed by `variableType`:
/// - `INTEGER`: an integer of any size, exactly (or a string holding one); a double such as `1.5` or `1e300`
///   is refused unless it is integral within 2^53 (where it names exactly one integer);
/// - `FLOAT`: a number (or a string holding a finite one in decimal, as Python's `float()` reads it: not `0x1p3`),
///   made a float (`NumberForm.float`: `2` as `2.0`; every Abacus run is stored, and the store keeps the form,
///   `OperationPayloadCodec.numberForms`, so the runner sees `2.0`);
/// - `BOOLEAN`: `true` / `false` (or those words as strings, any case);
/// - `STRING`: a string; one that happens to be a data URI stays text (the body parser had made it a binary:
///   the caller's type wins, and `DataURI` re-encodes it byte for byte);
/// - `JSON`: any value; a string holding a JSON object or array is that object or array;
/// - `LIST`: a list (or a string holding a JSON array); with an `itemType`, each item is typed by it;
/// - `ATTACHMENT`: a binary, sent as a data URI `data:<mime>[;filename=<name>];base64,<payload>` (`DataURI`);
/// - the resource types (`FEATURE_GROUP`, `DATASET_ID`, `MODEL_ID`, ...): a non-empty string, passed on;
/// - no `variableType`: the value as sent.
///
/// A mapping with no value (absent or null) is an error when it is required, and leaves the variable out
/// otherwise. Errors are `InvalidParameterError` (a wrong shape or value) or `MissingParameterError` (a name
/// or required value absent), naming the mapping by its path (`pipelineVariableMappings[1].value`).
///
/// **Rendering** (a `PipelineVersion`'s `pipelineVariableMappings` and a step's `outputVariableMappings`): one
/// `{"name", "variableType", "value"}` object per variable, the type inferred from the value.
package enum AbacusVariableMappings {
    /// Integers beyond this lose precision in a double (`Value.number`), so they are refused, not rounded.
    static let maxExactInteger = Double(1 << 53)

    /// The bytes of a decimal number's text (`-1.5e+3`): what a FLOAT given as a string may hold.
    private static let decimalBytes = Set("0123456789+-.eE".utf8)

    /// The input variables of one run. `mappings` is the request's `pipelineVariableMappings`: a list, or
    /// nil / null for none. `limits` bound the JSON text a JSON or LIST string value may hold.
    package static func decode(_ mappings: Value?, limits: CodecLimits) throws(AbacusError) -> ValueObject {
        let path = "pipelineVariableMappings"
        let items: [Value]
        switch mappings {
        case nil, .null?: return ValueObject()
        case .list(let list)?: items = list
        case let other?: throw .invalidParameter("\(path) must be a list of mappings, got \(describe(other))")
        }
        var entries: [(key: String, value: Value)] = []
        var names: Set<String> = []
        for (index, item) in items.enumerated() {
            let itemPath = "\(path)[\(index)]"
            guard case .object(let mapping) = item else {
                throw .invalidParameter("\(itemPath) must be an object, got \(describe(item))")
            }
            guard let (name, value) = try decodeMapping(mapping, path: itemPath, limits: limits) else { continue }
            guard names.insert(name).inserted else {
                throw .invalidParameter("\(itemPath) maps \"\(name)\" again; each variable may be given once")
            }
            entries.append((key: name, value: value))
        }
        return ValueObject(uniqueKeyEntries: entries)
    }

    /// One mapping's variable name and typed value; nil for an optional variable given no value.
    static func decodeMapping(
        _ mapping: ValueObject,
        path: String,
        limits: CodecLimits
    ) throws(AbacusError) -> (String, Value)? {
        var nameValue = try field(mapping, "name", path: path)
        if nameValue == nil { nameValue = try field(mapping, "pipelineVariable", "pipeline_variable", path: path) }
        guard let nameValue else { throw .missingParameter("\(path).name is required") }
        guard case .string(let name) = nameValue, !name.isEmpty else {
            throw .invalidParameter("\(path).name must be a non-empty string, got \(describe(nameValue))")
        }
        let type = try typeField(mapping, "variableType", "variable_type", path: path)
        let itemType = try typeField(mapping, "itemType", "item_type", path: path)
        var isRequired = true
        if let required = try field(mapping, "isRequired", "is_required", path: path) {
            guard case .bool(let flag) = required else {
                throw .invalidParameter("\(path).isRequired must be true or false, got \(describe(required))")
            }
            isRequired = flag
        }
        guard let value = try field(mapping, "value", path: path) else {
            if isRequired {
                throw .missingParameter("\(path) (\"\(name)\") has no value; give one, or set isRequired to false")
            }
            return nil
        }
        guard let type else { return (name, value) }
        return (name, try typed(value, as: type, itemType: itemType, path: "\(path).value", limits: limits))
    }

    /// `value` checked (and where the rules allow, converted) for `type`, which the mapping's `typeField` gave
    /// (`variableType`, or a LIST's `itemType` for its items: the error names the one to fix).
    static func typed(
        _ value: Value,
        as type: AbacusVariableType,
        itemType: AbacusVariableType?,
        path: String,
        limits: CodecLimits,
        typeField: String = "variableType"
    ) throws(AbacusError) -> Value {
        func wrong(_ expected: String) -> AbacusError {
            .invalidParameter("\(path) must be \(expected) for \(typeField) \(type.rawValue), got \(describe(value))")
        }
        switch type {
        case .integer:
            // abacusai sends a Python int as JSON digits of any size: past 2^53 the body parser made it a
            // `largeInteger`, which is carried exactly (its digits reach an http runner, REST answers and the
            // store). A double (`1.5e3`, or past 2^53 where it no longer names one integer) is refused.
            switch value {
            // `2.0` is the integer 2: plain, so an http runner reads an int.
            case .number(let n, _) where n.rounded(.towardZero) == n && abs(n) <= maxExactInteger: return .number(n)
            case .largeInteger: return value
            case .string(let text):
                if let n = Int64(text) { return .integer(n) }
                if let large = LargeInteger(text) { return .largeInteger(large) }
            default: break
            }
            throw wrong("an integer")
        case .float:
            // In the float form, so `2` is `2.0`: the store keeps it (`OperationPayloadCodec.numberForms`), so a
            // Python runner reads a float and the version's mappings read FLOAT again (`inferredType(of:)`).
            switch value {
            case .number(let n, _): return .number(n, form: .float)
            case .largeInteger(let i): return .number(i.doubleValue, form: .float)
            case .string(let text):
                // Decimal only, as Python's `float()` reads it: Swift's parser also takes hex (`0x1p3`).
                if text.utf8.allSatisfy({ decimalBytes.contains($0) }), let number = Double(text), number.isFinite {
                    return .number(number, form: .float)
                }
            default: break
            }
            throw wrong("a number")
        case .boolean:
            switch value {
            case .bool: return value
            case .string(let text) where text.lowercased() == "true": return .bool(true)
            case .string(let text) where text.lowercased() == "false": return .bool(false)
            default: throw wrong("true or false")
            }
        case .string:
            switch value {
            case .string: return value
            case .blob(let blob): return .string(DataURI.encode(blob))
            default: throw wrong("a string")
            }
        case .json:
            if case .string(let text) = value, let parsed = jsonContainer(in: text, limits: limits) { return parsed }
            return value
        case .list:
            var items: [Value]
            switch value {
            case .list(let list): items = list
            case .string(let text):
                guard case .list(let list)? = jsonContainer(in: text, limits: limits) else { throw wrong("a list") }
                items = list
            default: throw wrong("a list")
            }
            if let itemType {
                for index in items.indices {
                    items[index] = try typed(
                        items[index],
                        as: itemType,
                        itemType: nil,
                        path: "\(path)[\(index)]",
                        limits: limits,
                        typeField: "itemType"
                    )
                }
            }
            return .list(items)
        case .attachment:
            switch value {
            case .blob: return value
            case .string(let text):
                // The body parser turns every well-formed base64 data URI into a binary already; a string that
                // reaches here is not one (or is one with a bad payload, which decoding reports).
                do {
                    if let blob = try DataURI.decode(text) { return .blob(blob) }
                } catch {
                    throw .invalidParameter("\(path): \(DataURI.message(for: error))")
                }
                // Shaped like one, but its header holds a byte a data URI's header cannot (RFC 2397 §3: a raw
                // space or non-ASCII letter in `filename=`): say that, not merely what the form is.
                if let header = Self.rawDataURIHeader(text) {
                    throw .invalidParameter(
                        "\(path) must be a data URI for \(typeField) \(type.rawValue): its header \"\(header.prefix(80))\" "
                            + "holds a space, control or non-ASCII character; percent-encode parameter values such as "
                            + "the filename (filename=pic%20%F0%9F%9A%80.png; RFC 2397)")
                }
                throw wrong("a data URI (data:<media type>[;filename=<percent-encoded name>];base64,<payload>)")
            default: throw wrong("a data URI (data:<media type>;base64,<payload>)")
            }
        case .featureGroup, .datasetID, .modelID, .featureGroupID, .monitorID, .batchPredictionID, .deploymentID:
            guard case .string(let text) = value, !text.isEmpty else { throw wrong("a non-empty string") }
            return value
        }
    }

    /// The object or array JSON text holds; nil when the text is not JSON or holds a scalar.
    private static func jsonContainer(in text: String, limits: CodecLimits) -> Value? {
        guard let parsed = try? JSONValueCodec.decode(ByteBuffer(string: text), limits: limits) else { return nil }
        switch parsed {
        case .object, .list: return parsed
        default: return nil
        }
    }

    /// A field given in either spelling; null counts as absent. Both spellings with different values are
    /// refused rather than one silently winning.
    private static func field(
        _ mapping: ValueObject,
        _ camel: String,
        _ snake: String? = nil,
        path: String
    ) throws(AbacusError) -> Value? {
        let first = mapping[camel].flatMap { $0 == .null ? nil : $0 }
        let second = snake.flatMap { mapping[$0] }.flatMap { $0 == .null ? nil : $0 }
        if let first, let second, first != second, let snake {
            throw .invalidParameter("\(path) has both \(camel) and \(snake), with different values; send one")
        }
        return first ?? second
    }

    private static func typeField(
        _ mapping: ValueObject,
        _ camel: String,
        _ snake: String,
        path: String
    ) throws(AbacusError) -> AbacusVariableType? {
        guard let value = try field(mapping, camel, snake, path: path) else { return nil }
        guard case .string(let text) = value, let type = AbacusVariableType(name: text) else {
            let known = AbacusVariableType.allCases.map(\.rawValue).joined(separator: ", ")
            throw .invalidParameter("\(path).\(camel) must be one of \(known); got \(describe(value))")
        }
        return type
    }

    // MARK: Rendering

    /// `[{"name","variableType","value"}, ...]` for `variables`, in their order.
    package static func render(_ variables: ValueObject) -> Value {
        .list(
            variables.map { name, value in
                .object(
                    ValueObject(uniqueKeyEntries: [
                        (key: "name", value: .string(name)),
                        (key: "variableType", value: .string(inferredType(of: value).rawValue)),
                        (key: "value", value: value),
                    ])
                )
            }
        )
    }

    /// The type a value reads as: integral numbers within 2^53 are INTEGER unless written as a float (`2.0`, or
    /// given as a FLOAT: ``NumberForm``), binaries ATTACHMENT, objects (and null) JSON.
    package static func inferredType(of value: Value) -> AbacusVariableType {
        switch value {
        case .bool: .boolean
        case .number(_, .float): .float
        case .number(let n, .plain): n.rounded(.towardZero) == n && abs(n) <= maxExactInteger ? .integer : .float
        case .largeInteger: .integer
        case .string: .string
        case .list: .list
        case .object, .null: .json
        case .blob: .attachment
        }
    }

    /// "a string", "an object", ... with a short quote of scalars, for error messages.
    static func describe(_ value: Value) -> String {
        switch value {
        case .null: "null"
        case .bool(let flag): "the boolean \(flag)"
        case .number(let n, _):
            "the number \(n.rounded(.towardZero) == n && abs(n) < 1e15 ? String(Int64(n)) : String(n))"
        case .largeInteger(let i): "the number \(i.digits)"
        case .string(let text): "the string \"\(text.count > 40 ? text.prefix(40) + "…" : Substring(text))\""
        case .list: "a list"
        case .object: "an object"
        case .blob: "a binary (data URI)"
        }
    }
}

extension AbacusVariableMappings {
    /// The header (between `data:` and `;base64,`) of `text` when `text` is shaped like a base64 data URI but
    /// its header holds a byte outside printable ASCII (which `DataURI` does not take as a data URI); else nil.
    static func rawDataURIHeader(_ text: String) -> String? {
        guard text.prefix(5).lowercased() == "data:", let comma = text.firstIndex(of: ","),
            text[..<comma].lowercased().hasSuffix(";base64")
        else { return nil }
        let header = text[text.index(text.startIndex, offsetBy: 5)..<comma]
        guard header.utf8.contains(where: { $0 <= 0x20 || $0 >= 0x7F }) else { return nil }
        return String(header)
    }
}
