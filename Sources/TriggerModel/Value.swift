/// A JSON-like value as it travels through the gateway, plus one case JSON lacks: `blob`.
///
/// Every ingress codec (REST JSON, multipart, protobuf `Struct`) produces `Value`s and every egress codec
/// consumes them, so no protocol type leaks past the codecs. Numbers are `Double` because that is what both
/// JSON (as commonly implemented) and `google.protobuf.Value` carry; codecs print integral numbers without a
/// fraction so `1` round-trips as `1`.
package enum Value: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case list([Value])
    case object(ValueObject)
    case blob(Blob)

    package var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    package var numberValue: Double? {
        if case .number(let n) = self { return n }
        return nil
    }

    package var objectValue: ValueObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    package var blobValue: Blob? {
        if case .blob(let b) = self { return b }
        return nil
    }
}

/// An object whose keys keep the order they arrived in (JSON objects and protobuf `Struct`s are sent in a
/// meaningful order by users, and echoing them back reordered surprises people).
///
/// Lookups are linear: objects in trigger payloads are small (tens of keys), where a scan beats hashing.
/// Setting an existing key replaces its value in place and keeps its position.
package struct ValueObject: Sendable, Equatable, Sequence, ExpressibleByDictionaryLiteral {
    package private(set) var entries: [(key: String, value: Value)]

    package init() { self.entries = [] }

    package init(_ entries: [(key: String, value: Value)]) {
        self.entries = []
        self.entries.reserveCapacity(entries.count)
        for (k, v) in entries { self[k] = v }
    }

    package init(dictionaryLiteral elements: (String, Value)...) {
        self.init(elements.map { (key: $0.0, value: $0.1) })
    }

    package var count: Int { entries.count }
    package var isEmpty: Bool { entries.isEmpty }
    package var keys: [String] { entries.map(\.key) }

    package subscript(key: String) -> Value? {
        get { entries.first(where: { $0.key == key })?.value }
        set {
            if let i = entries.firstIndex(where: { $0.key == key }) {
                if let newValue { entries[i].value = newValue } else { entries.remove(at: i) }
            } else if let newValue {
                entries.append((key: key, value: newValue))
            }
        }
    }

    package func makeIterator() -> IndexingIterator<[(key: String, value: Value)]> {
        entries.makeIterator()
    }

    package static func == (lhs: ValueObject, rhs: ValueObject) -> Bool {
        guard lhs.entries.count == rhs.entries.count else { return false }
        for (l, r) in zip(lhs.entries, rhs.entries) where l.key != r.key || l.value != r.value {
            return false
        }
        return true
    }
}

extension ValueObject {
    /// Builds an object from entries whose keys are already unique, skipping the per-key scan of `init(_:)`
    /// (quadratic in the key count, which a hostile 32 MiB body of tiny keys would exploit). Codecs that
    /// deduplicate while parsing use this; passing duplicate keys is a programmer error.
    package init(uniqueKeyEntries entries: [(key: String, value: Value)]) {
        self.init()
        self.entries = entries
    }
}
