import TriggerModel

/// A fixed set of ASCII keys (gRPC `:path`s), each with a value, looked up on a key's UTF-8 bytes: a
/// multiply-xor hash a word at a time and a word-wise comparison of the one or few candidates, with the stored
/// key itself handed back (the same `String` object on every lookup).
///
/// Why not `[String: Value]`: a `Dictionary` lookup of a 70-byte gRPC path hashed it with SipHash (~450
/// instructions) and compared it, through `String ==`'s general path (~100 each), with every key its probe
/// sequence met (the pipeline service's paths share their first 48 bytes): ~800 to ~1 100 instructions per gRPC
/// call, varying with the process's hash seed (bench/README.md, "Branch hotpath7"). The keys are fixed when the
/// table is made, so the hash need not resist flooding: a lookup is bounded by the longest probe run among
/// the table's own keys, whatever the input.
struct StaticPathTable<Value: Sendable>: Sendable {
    private struct Entry: Sendable {
        /// The key as given: what ``lookup(_:)`` hands back, so that its callers hold one object per key.
        let key: String
        let value: Value
        let bytes: [UInt8]
        let hash: UInt64
    }

    private let entries: [Entry]
    /// Open addressing with linear probing: an entry's index plus one, 0 for an empty slot. A power of two in
    /// size, at least twice the key count (runs stay short).
    private let slots: [UInt16]
    private let mask: Int

    /// `pairs`' keys must be unique.
    init(_ pairs: [(key: String, value: Value)]) {
        precondition(pairs.count < Int(UInt16.max), "StaticPathTable: too many keys")
        var size = 8
        while size < 2 * pairs.count { size *= 2 }
        var slots = [UInt16](repeating: 0, count: size)
        var entries: [Entry] = []
        entries.reserveCapacity(pairs.count)
        for (key, value) in pairs {
            let bytes = Array(key.utf8)
            let hash = bytes.withUnsafeBytes { Self.hash($0) }
            var slot = Int(truncatingIfNeeded: hash) & (size - 1)
            while slots[slot] != 0 {
                precondition(entries[Int(slots[slot]) - 1].bytes != bytes, "StaticPathTable: duplicate key \(key)")
                slot = (slot + 1) & (size - 1)
            }
            entries.append(Entry(key: key, value: value, bytes: bytes, hash: hash))
            slots[slot] = UInt16(entries.count)
        }
        self.entries = entries
        self.slots = slots
        self.mask = size - 1
    }

    /// The stored key equal to `key` byte for byte, and its value; nil when there is none.
    func lookup(_ key: String) -> (key: String, value: Value)? {
        guard let index = key.withUTF8Bytes({ index(of: UnsafeRawBufferPointer($0)) }) else { return nil }
        return (entries[index].key, entries[index].value)
    }

    /// The index in ``entries`` of the key equal to `bytes`.
    private func index(of bytes: UnsafeRawBufferPointer) -> Int? {
        let hash = Self.hash(bytes)
        var slot = Int(truncatingIfNeeded: hash) & mask
        return entries.withUnsafeBufferPointer { entries in
            slots.withUnsafeBufferPointer { slots in
                while true {
                    let stored = Int(slots[slot])
                    if stored == 0 { return nil }
                    // Fields read in place: a copy of the entry would retain and release its key and bytes.
                    if entries[stored - 1].hash == hash,
                        entries[stored - 1].bytes.withUnsafeBytes({ Self.equal($0, bytes) })
                    {
                        return stored - 1
                    }
                    slot = (slot + 1) & mask
                }
            }
        }
    }

    /// A multiply-xor hash of `bytes`, eight at a time (the last 1–7 as one word, zero-padded), seeded with the
    /// count.
    static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        let multiplier: UInt64 = 0x9E37_79B9_7F4A_7C15
        var hash = UInt64(bytes.count) &* multiplier
        var offset = 0
        while offset + 8 <= bytes.count {
            hash = (hash ^ bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) &* multiplier
            hash ^= hash >> 29
            offset += 8
        }
        if offset < bytes.count {
            var tail: UInt64 = 0
            var shift: UInt64 = 0
            while offset < bytes.count {
                tail |= UInt64(bytes[offset]) << shift
                shift += 8
                offset += 1
            }
            hash = (hash ^ tail) &* multiplier
            hash ^= hash >> 29
        }
        return hash
    }

    /// Whether `a` and `b` hold the same bytes, compared a word at a time.
    static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        var offset = 0
        while offset + 8 <= a.count {
            guard
                a.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                    == b.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            else { return false }
            offset += 8
        }
        while offset < a.count {
            guard a[offset] == b[offset] else { return false }
            offset += 1
        }
        return true
    }
}
