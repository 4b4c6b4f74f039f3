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
        /// The field is sensitive: it was received as, or is to be sent as, a "literal never indexed" (RFC 7541
        /// §6.2.3, libnghttp2's `NGHTTP2_NV_FLAG_NO_INDEX`). An intermediary must send a value it received that way
        /// the same way (§7.1.3), so the flag travels with what the gateway forwards. How a field is encoded, not
        /// what it is: equality and hashing ignore it.
        package var neverIndexed: Bool

        package init(name: String, value: String, neverIndexed: Bool = false) {
            self.name = name
            self.value = value
            self.neverIndexed = neverIndexed
        }

        package static func == (lhs: Field, rhs: Field) -> Bool {
            lhs.name == rhs.name && lhs.value == rhs.value
        }

        package func hash(into hasher: inout Hasher) {
            hasher.combine(name)
            hasher.combine(value)
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
    /// How many fields fit before the block's storage grows.
    package var capacity: Int { self.fields.capacity }
    package var isEmpty: Bool { self.fields.isEmpty }

    /// Appends a field, lower-casing its name and keeping pseudo-headers ahead of regular ones.
    package mutating func add(name: String, value: String) {
        self.appendReceived(name: Self.lowercased(name), value: value)
    }

    /// ``add(name:value:)`` for a name known to be lowercase (a literal such as `"grpc-timeout"`): not scanned
    /// for upper case (issue 11: ~90 instructions per field of a backend call's request headers).
    /// The strings are taken, not copied (see ``append(name:value:isPseudo:neverIndexed:)``).
    /// `neverIndexed`: sent as a "literal never indexed" (``Field/neverIndexed``).
    package mutating func add(
        lowercasedName name: consuming String, value: consuming String, neverIndexed: Bool = false
    ) {
        assert(Self.lowercased(name) == name, "\(name) is not lowercase")
        let isPseudo = name.utf8.first == UInt8(ascii: ":")
        self.append(name: name, value: value, isPseudo: isPseudo, neverIndexed: neverIndexed)
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
        // Stored names are lowercase, so the first field equal to `name` up to ASCII case is the first exact
        // match when `name` is lowercase, as callers nearly always ask. Lengths first: most lookups of a gRPC call
        // are of metadata the client did not send (~10 misses per call over ~8 fields), and a length differs
        // far more cheaply than a name; only a field of the same length is compared, exactly, then folded
        // (issue 11: folding `name` up front, or scanning it for upper case, cost 150–250 instructions a lookup).
        // Over the buffer by index: `for field in fields` copied each field (a retain and release of both
        // strings per field visited).
        let length = name.utf8.count
        return self.fields.withUnsafeBufferPointer { fields in
            for index in fields.indices where fields[index].name.utf8.count == length {
                if fields[index].name == name || Self.equalFolded(lowercase: fields[index].name, name) {
                    return fields[index].value
                }
            }
            return nil
        }
    }

    /// Whether `name` equals the lowercase `stored` name of the same length up to ASCII case (field names are
    /// ASCII tokens, RFC 9110 §5.1).
    private static func equalFolded(lowercase stored: String, _ name: String) -> Bool {
        var names = name.utf8.makeIterator()
        for byte in stored.utf8 {
            guard let other = names.next() else { return false }
            let folded = other &- UInt8(ascii: "A") < 26 ? other | 0x20 : other
            if folded != byte { return false }
        }
        return names.next() == nil
    }

    /// Whether some field is marked sensitive (``Field/neverIndexed``): a scan of the flags alone, by index (no
    /// field copied), for callers that look further only when one is.
    package var containsNeverIndexed: Bool {
        self.fields.withUnsafeBufferPointer { fields in
            for index in fields.indices where fields[index].neverIndexed { return true }
            return false
        }
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
        var name = name
        let hasUppercase = name.withUTF8 { bytes in
            for byte in bytes where byte &- UInt8(ascii: "A") < 26 { return true }
            return false
        }
        return hasUppercase ? name.lowercased() : name
    }

    /// Empties the block, keeping its storage for the next one when nothing else holds it (Array's
    /// `removeAll(keepingCapacity:)`: a shared storage stays with its other holders, this block gets a fresh one).
    mutating func removeAllKeepingCapacity() {
        self.fields.removeAll(keepingCapacity: true)
        self.pseudoCount = 0
    }

    /// Adds a field whose name is lowercase already (a received one: nghttp2 has validated it).
    mutating func appendReceived(name: String, value: String) {
        self.append(name: name, value: value, isPseudo: name.utf8.first == UInt8(ascii: ":"))
    }

    /// Adds a field whose name is lowercase, `isPseudo` when it starts with `:` (the caller has looked at its
    /// first byte already). The strings are taken, not copied: a borrowed name and value were retained once more
    /// to go into the array and released by the caller (issue 11: four reference-count operations per field,
    /// ~11 fields per proxied gRPC call).
    mutating func append(name: consuming String, value: consuming String, isPseudo: Bool, neverIndexed: Bool = false) {
        let field = Field(name: name, value: value, neverIndexed: neverIndexed)
        if isPseudo {
            // Pseudo-headers nearly always come first: appended then, not inserted (an insert shifts nothing
            // but still goes through `replaceSubrange`, issue 11).
            if self.pseudoCount == self.fields.count {
                self.fields.append(field)
            } else {
                self.fields.insert(field, at: self.pseudoCount)
            }
            self.pseudoCount += 1
        } else {
            self.fields.append(field)
        }
    }
}
