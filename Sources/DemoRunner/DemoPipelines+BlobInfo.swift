import TriggerModel

extension DemoPipelines {
    /// `blob-info` for one batch element: each variable that holds a blob somewhere keeps its shape, with
    /// every blob replaced by its description; other values inside it stay as they were.
    static func blobInfo(_ variables: ValueObject) -> ValueObject {
        var out = ValueObject()
        for (key, value) in variables where containsBlob(value) {
            out[key] = describeBlobs(value)
        }
        return out
    }

    static func describeBlobs(_ value: Value) -> Value {
        switch value {
        case .blob(let blob):
            var info: ValueObject = [
                "size": .number(Double(blob.count)),
                "sha256": .string(BufferSHA256.hexDigest(blob.bytes)),
                "content_type": .string(blob.contentType),
            ]
            if let fileName = blob.fileName { info["file_name"] = .string(fileName) }
            return .object(info)
        case .list(let items): return .list(items.map(describeBlobs))
        case .object(let object):
            return .object(ValueObject(object.map { (key: $0.key, value: describeBlobs($0.value)) }))
        case .null, .bool, .number, .largeInteger, .string: return value
        }
    }

    static func containsBlob(_ value: Value) -> Bool {
        switch value {
        case .blob: true
        case .list(let items): items.contains(where: containsBlob)
        case .object(let object): object.contains { containsBlob($0.value) }
        case .null, .bool, .number, .largeInteger, .string: false
        }
    }
}
