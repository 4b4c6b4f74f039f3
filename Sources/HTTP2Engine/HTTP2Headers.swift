/// An ordered HTTP/2 header block: pseudo-header fields first, then regular fields, names lowercase.
///
/// Order and duplicates are kept as sent (gRPC metadata may repeat a key). Adding a pseudo-header after a
/// regular field inserts it after the last pseudo-header, so a block built in any order is still valid on
/// the wire (RFC 9113 §8.3). Names are lower-cased on insertion; values are kept byte for byte, decoded as
/// UTF-8 on receive (invalid sequences become U+FFFD, which is why binary gRPC metadata travels base64 in
/// `-bin` keys).
package struct HTTP2Headers: Hashable, Sendable, Sequence, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    /// One name/value pair.
    package struct Field: Hashable, Sendable {
        package var name: String
        package var value: String

        package init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    package private(set) var fields: [Field] = []
    /// How many leading fields are pseudo-headers.
    private var pseudoCount = 0

    package init() {}

    /// An empty block with room for `capacity` fields (a block built field by field then grows once, not
    /// at every power of two).
    package init(capacity: Int) {
        self.fields.reserveCapacity(capacity)
    }

    package init(_ pairs: [(String, String)]) {
        self.fields.reserveCapacity(pairs.count)
        for (name, value) in pairs { self.add(name: name, value: value) }
    }

    /// Duplicate keys are allowed and kept in order: `[":status": "200", "x": "1", "x": "2"]`.
    package init(dictionaryLiteral elements: (String, String)...) {
        self.init(elements)
    }

    package var count: Int { self.fields.count }
    package var isEmpty: Bool { self.fields.isEmpty }

    /// Appends a field, lower-casing its name and keeping pseudo-headers ahead of regular ones.
    package mutating func add(name: String, value: String) {
        let name = Self.lowercased(name)
        if name.utf8.first == UInt8(ascii: ":") {
            self.fields.insert(Field(name: name, value: value), at: self.pseudoCount)
            self.pseudoCount += 1
        } else {
            self.fields.append(Field(name: name, value: value))
        }
    }

    /// Replaces every field named `name` with one field (appended if there was none).
    package mutating func replaceOrAdd(name: String, value: String) {
        self.remove(name: name)
        self.add(name: name, value: value)
    }

    package mutating func remove(name: String) {
        let name = Self.lowercased(name)
        self.fields.removeAll { $0.name == name }
        self.pseudoCount = self.fields.prefix { $0.name.utf8.first == UInt8(ascii: ":") }.count
    }

    /// The first value of `name` (case-insensitive), e.g. `headers.first(name: ":path")`.
    package func first(name: String) -> String? {
        // Stored names are lowercase, and callers nearly always ask with a lowercase literal: an exact match
        // needs no folding (issue 11: folding first cost ~150 instructions per lookup, ~20 lookups per gRPC
        // call). Only a miss has to fold, in case `name` had upper case.
        // Lengths first: a string comparison of two different names cost ~45 instructions, and most lookups of
        // a gRPC call are of metadata the client did not send (~10 misses per call over ~8 fields).
        let length = name.utf8.count
        for field in self.fields where field.name.utf8.count == length && field.name == name { return field.value }
        guard Self.hasUppercase(name) else { return nil }
        let folded = name.lowercased()
        return self.fields.first { $0.name == folded }?.value
    }

    /// Every value of `name` in order.
    package func values(name: String) -> [String] {
        let name = Self.lowercased(name)
        return self.fields.filter { $0.name == name }.map(\.value)
    }

    package func makeIterator() -> IndexingIterator<[Field]> { self.fields.makeIterator() }

    package var description: String {
        "[" + self.fields.map { "\($0.name): \($0.value)" }.joined(separator: ", ") + "]"
    }

    /// Header names are short; only allocate when there is an upper-case ASCII byte to fold. The bytes are
    /// scanned through `withUTF8` (a plain loop): `utf8.contains` cost ~400 instructions per name, and every
    /// `first(name:)` runs this (bench/README.md, "Instructions per call").
    private static func lowercased(_ name: String) -> String {
        hasUppercase(name) ? name.lowercased() : name
    }

    /// Whether `name` has an upper-case ASCII letter. Through `utf8.withContiguousStorageIfAvailable` (no copy
    /// of the string, which `withUTF8` on a `var` made: a retain and release per lookup); a string without
    /// contiguous UTF-8 (bridged) is scanned byte by byte.
    private static func hasUppercase(_ name: String) -> Bool {
        let scanned = name.utf8.withContiguousStorageIfAvailable { bytes in
            for byte in bytes where byte &- UInt8(ascii: "A") < 26 { return true }
            return false
        }
        if let scanned { return scanned }
        for byte in name.utf8 where byte &- UInt8(ascii: "A") < 26 { return true }
        return false
    }

    /// Adds a received field whose name nghttp2 has already validated as lowercase.
    mutating func appendReceived(name: String, value: String) {
        if name.utf8.first == UInt8(ascii: ":") {
            self.fields.insert(Field(name: name, value: value), at: self.pseudoCount)
            self.pseudoCount += 1
        } else {
            self.fields.append(Field(name: name, value: value))
        }
    }
}
