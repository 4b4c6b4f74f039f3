/// The long field values a connection received most recently, handed out again when a later header block repeats
/// one byte for byte, instead of a new `String` decoded, validated and allocated from the bytes.
///
/// Why (issue 11): a client repeats most of its fields on every request of a connection (HPACK indexes them, so
/// they cost it nothing), and the gateway decoded each again. The common short ones are literals
/// (``HTTP2CommonFields``); what is left over 15 bytes (a `String`'s inline capacity) was a heap allocation per
/// field and request: a gRPC call's `:path` (a method path of ~70 bytes), the client's `user-agent`, a long
/// `:authority`. A reused value costs a comparison and a retain.
///
/// Only the fields that repeat are kept (``repeats(name:)``): values new on every message (`request-id`,
/// `traceparent`) would evict the ones that repeat, and a credential (`authorization`) is not kept past its request.
/// Bounded: ``slotCount`` values of at most ``maxLength`` bytes each (about 1 KiB of text per connection), replaced in
/// turn; shorter and longer values are decoded as before. A value is reused only when its bytes are those of the
/// stored string exactly (so the result is the string decoding them would make: valid UTF-8 decodes to itself,
/// and a repaired value's replacement bytes differ from the invalid bytes received).
package struct RecentFieldValues {
    package static let slotCount = 4
    package static let maxLength = 256

    private var values: [String] = []

    package init() {}
    /// The slot the next new value replaces once all are used.
    private var nextSlot = 0

    /// The string of `bytes` (UTF-8; invalid sequences repaired, as `String(decoding:as:)` does), the value of the
    /// field `name` (nil: a name ``HTTP2CommonFields`` does not know, never one that repeats).
    package mutating func string(_ bytes: UnsafeBufferPointer<UInt8>, name: String?) -> String {
        // The length first: most values are short, and then the name is not even compared.
        guard bytes.count > 15, bytes.count <= Self.maxLength, let name, Self.repeats(name: name) else {
            return String(decoding: bytes, as: UTF8.self)
        }
        if let found = self.values.withUnsafeBufferPointer({ Self.index(of: bytes, in: $0) }) {
            return self.values[found]
        }
        let made = String(decoding: bytes, as: UTF8.self)
        if self.values.count < Self.slotCount {
            self.values.append(made)
        } else {
            self.values[self.nextSlot] = made
            self.nextSlot = (self.nextSlot + 1) % Self.slotCount
        }
        return made
    }

    /// Whether values of the field `name` (lowercase, as ``HTTP2CommonFields/name(_:)`` returns it) are kept: those a
    /// client sends alike on every request of a connection (a gRPC method's `:path`, `:authority`, `user-agent`).
    package static func repeats(name: String) -> Bool {
        switch name.utf8.count {
        case 5: name == ":path"
        case 10: name == ":authority" || name == "user-agent"
        default: false
        }
    }

    /// The values held (for tests).
    package var count: Int { self.values.count }

    /// The index of the stored value whose UTF-8 bytes are `bytes`, if any. By index over the buffer: iterating
    /// the strings would retain and release each.
    private static func index(of bytes: UnsafeBufferPointer<UInt8>, in values: UnsafeBufferPointer<String>) -> Int? {
        for index in values.indices where values[index].utf8.count == bytes.count {
            let equal = values[index].utf8.withContiguousStorageIfAvailable { stored in
                Self.equal(UnsafeRawBufferPointer(stored), UnsafeRawBufferPointer(bytes))
            }
            if equal == true { return index }
        }
        return nil
    }

    /// Whether two buffers of the same length hold the same bytes, compared a word at a time (`elementsEqual`
    /// took ~35 instructions a byte here: ~2 700 per gRPC call for its `:path` and `user-agent`).
    @inline(__always)
    private static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        let count = a.count
        var offset = 0
        while offset + 8 <= count {
            guard
                a.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                    == b.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            else { return false }
            offset += 8
        }
        while offset < count {
            guard a[offset] == b[offset] else { return false }
            offset += 1
        }
        return true
    }
}
