/// The open streams of one session by id, or what a session's owner keeps per stream (the frontend's stream
/// states, a backend session's calls): the entry added last kept aside, every other one in an open-addressing
/// hash table keyed by the 31-bit stream id.
///
/// Why our own and not `Dictionary`: a session looks its stream up by id in nearly every callback and
/// operation, about eleven times per unary call on each of the frontend and backend sessions, and a `Dictionary`
/// lookup costs ~150 to ~250 instructions (SipHash-1-3 of the key, then the probe). With calls in flight
/// (bench/callgrind `--clients 8 --max-streams 10`) the three tables cost ~8.7 k of ~111 k instructions per gRPC
/// unary call as dictionaries (issue 11, thirty-third session); stream ids need no keyed hash (see
/// ``home(of:shift:seed:)``), and a lookup here is ~25 instructions.
///
/// The entry added last is the one most lookups ask for with one call or stream at a time (a call's frontend
/// stream while it is handled, the backend stream opened for it), and a compare answers those (~10 instructions);
/// it enters the table only when a newer one is added, so a stream that opens and closes while it is the newest
/// never touches the table (branch hotpath; without it the stream row cost ~200 instructions more per event).
///
/// The table: linear probing at a load of at most 1/2, removal by backward shift (no tombstones: a long-lived
/// connection's churn never degrades its probes), one array of entries. Past 256 slots it shrinks by half when
/// it falls under 1/16 full (growth is at 1/2: between them, concurrency can move 8× without a rebuild), so a
/// burst of streams does not leave a large table for the progress timer's walks.
///
/// Generic in its value, so internal: other modules use ``HTTP2StreamObjectTable``, which is not (a generic type
/// of this module is not specialised in another: its unspecialised lookups, with their generic-metadata
/// look-ups, cost ~8 k instructions per gRPC call more; bench/callgrind, branch grpcpass).
struct HTTP2StreamTable<Value> {
    /// One slot: `key` is a stream id (non-negative), or ``emptyKey`` with no value.
    struct Entry {
        var key: Int32
        var value: Value?
    }

    /// The key of an empty slot: no stream id is negative.
    static var emptyKey: Int32 { -1 }
    /// The first allocation's slot count: 8 stored streams before the first growth.
    private static var initialCapacity: Int { 16 }
    /// The smallest table a removal shrinks to: 256 slots (4 KiB for object values) hold 128 streams, more than
    /// a client usually keeps in flight per connection (h2load -m10; grpc-go's 100 only under load) and what a
    /// backend connection carrying many clients' calls moves through (80 in flight in bench/callgrind's
    /// `--clients 8 --max-streams 10`: with a floor of 64 it was rebuilt at 128 and 256 slots in turn, 0.08 times
    /// per call at ~8 500 instructions a rebuild, thirty-fourth session); shrinking is for after a burst of
    /// hundreds. A table grows from 16 slots, so a connection that never passes 128 streams never gets here.
    private static var shrinkFloor: Int { 256 }

    /// The key of the entry added last, or ``emptyKey`` when there is none (or it was removed); never in
    /// ``entries``. Two stored properties, not an optional `(id:, value:)` tuple: a tuple's copy and destroy went
    /// through the runtime's generic tuple value witnesses once inlined into another module (~700 instructions
    /// per gRPC call in `outlined init with copy of (id: Int32, value: AnyObject)?`; issue 11, fiftieth session).
    private var newestKey: Int32 = Self.emptyKey
    /// The value of the entry added last: nil exactly when ``newestKey`` is ``emptyKey``.
    private var newestValue: Value?
    /// Every entry but the newest (``newestKey``): the slots (a power of two of them, or none before the first
    /// insertion).
    private var entries: [Entry] = []
    /// The number of entries in ``entries``.
    private var storedCount = 0
    /// Mixed into every key before it is hashed (see ``home(of:shift:seed:)``): the process's, drawn once.
    private let seed = streamTableSeed

    init() {}

    var count: Int { self.storedCount &+ (self.newestKey == Self.emptyKey ? 0 : 1) }
    var isEmpty: Bool { self.newestKey == Self.emptyKey && self.storedCount == 0 }
    /// The table's slots (0, or a power of two from 16): for tests of growth and shrinking.
    var slotCount: Int { self.entries.count }

    /// The slot a key is looked for first: the top bits of a Fibonacci hash (the id, XORed with `seed`, times
    /// 2^64 / φ), `shift` being 64 − log2(the slot count). Consecutive ids land far apart, so the clusters a
    /// removal's backward shift walks stay short; `id >> 1` put a connection's open streams in one run of
    /// consecutive slots, which every removal walked to its end (~370 instructions per removal with 80 streams on
    /// a backend connection).
    ///
    /// The seed (random per process): without it a peer could pick growing odd ids that share a home slot (the
    /// first 100 such ids are below 100 721), and every lookup on its connection would walk all its open streams
    /// (6× slower at 100 streams, 57× at 1 000; `limits.max_concurrent_streams` may be set far higher). A peer
    /// only picks ids that grow (RFC 9113 §5.1.1) among at most SETTINGS_MAX_CONCURRENT_STREAMS open ones, so
    /// even unseeded the cost was bounded by that setting (review of 64c03ee).
    @inline(__always)
    static func home(of id: Int32, shift: UInt64, seed: UInt64) -> Int {
        Int(truncatingIfNeeded: ((UInt64(UInt32(bitPattern: id)) ^ seed) &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    /// 64 − log2(`entries.count`), for ``home(of:shift:seed:)``; not stored, so that the struct stays small (it is
    /// copied to the stack for each out-of-line lookup).
    @inline(__always)
    private var shift: UInt64 { UInt64(truncatingIfNeeded: 64 &- self.entries.count.trailingZeroBitCount) }

    /// The table's slot holding `id`, or nil.
    @inline(__always)
    private func slot(of id: Int32) -> Int? {
        guard self.storedCount > 0 else { return nil }
        let mask = self.entries.count &- 1
        var index = Self.home(of: id, shift: self.shift, seed: self.seed)
        while true {
            let key = self.entries[index].key
            if key == id { return index }
            if key == Self.emptyKey { return nil }
            index = (index &+ 1) & mask
        }
    }

    subscript(id: Int32) -> Value? {
        // Inlined: the newest entry's compare at each call site (the one-stream-at-a-time case); the table's
        // probe out of line.
        @inline(__always) get {
            if self.newestKey == id { return self.newestValue }
            return self.storedValue(for: id)
        }
        set {
            precondition(id >= 0, "HTTP/2 stream ids are 31-bit non-negative integers")
            guard let newValue else {
                self.removeValue(forKey: id)
                return
            }
            if self.newestKey == id {
                self.newestValue = newValue
                return
            }
            if let index = self.slot(of: id) {
                self.entries[index].value = newValue
                return
            }
            // Moved into the table, not copied (a copy was a retain here and a release at the assignment below,
            // each an atomic operation; issue 11).
            if let newest = self.newestValue.take() { self.store(self.newestKey, newest) }
            self.newestKey = id
            self.newestValue = newValue
        }
    }

    /// The table's value for `id` (never the newest entry's).
    @inline(never)
    private func storedValue(for id: Int32) -> Value? {
        guard let index = self.slot(of: id) else { return nil }
        return self.entries[index].value
    }

    /// Puts a key known to be absent into the table, growing it first when it would pass half full.
    private mutating func store(_ id: Int32, _ value: consuming Value) {
        if (self.storedCount &+ 1) &* 2 > self.entries.count {
            self.resize(to: Swift.max(Self.initialCapacity, self.entries.count &* 2))
        }
        self.insertNew(id, value)
    }

    /// Stores a key known to be absent; the table has room.
    private mutating func insertNew(_ id: Int32, _ value: consuming Value) {
        let mask = self.entries.count &- 1
        let shift = self.shift
        let seed = self.seed
        let index = self.entries.withUnsafeBufferPointer { slots in
            var index = Self.home(of: id, shift: shift, seed: seed)
            while slots[index].key != Self.emptyKey { index = (index &+ 1) & mask }
            return index
        }
        // Outside the closure, which could only copy `value`: moved in.
        self.entries[index] = Entry(key: id, value: value)
        self.storedCount &+= 1
    }

    @discardableResult
    mutating func removeValue(forKey id: Int32) -> Value? {
        if self.newestKey == id {
            self.newestKey = Self.emptyKey
            return self.newestValue.take()  // moved out: no retain and release
        }
        guard let found = self.slot(of: id) else { return nil }
        self.storedCount &-= 1
        let mask = self.entries.count &- 1
        let shift = self.shift
        let seed = self.seed
        // One uniqueness check for the whole shift; element writes through `Array`'s subscript cost a check
        // and an outlined destroy of the old `Entry` each (bench/callgrind, thirty-third session).
        let removed = self.entries.withUnsafeMutableBufferPointer { slots -> Value? in
            var hole = found
            let removed = slots[hole].value.take()
            slots[hole].key = Self.emptyKey
            // Backward shift: an entry after the hole moves into it unless its home lies cyclically in
            // (hole, index], where a lookup starting at its home would still reach it without crossing the hole.
            var index = hole
            while true {
                index = (index &+ 1) & mask
                let key = slots[index].key
                if key == Self.emptyKey { break }
                let home = Self.home(of: key, shift: shift, seed: seed)
                let stays = hole <= index ? (hole < home && home <= index) : (hole < home || home <= index)
                if stays { continue }
                slots.swapAt(hole, index)  // the hole's entry is empty: the entry moves, the hole moves on
                hole = index
            }
            return removed
        }
        if self.entries.count > Self.shrinkFloor, self.storedCount &* 16 < self.entries.count {
            self.resize(to: self.entries.count / 2)
        }
        return removed
    }

    mutating func removeAll() {
        self.newestKey = Self.emptyKey
        self.newestValue = nil
        self.entries = []
        self.storedCount = 0
    }

    /// Rebuilds the table at `capacity` slots (a power of two, over twice `storedCount`).
    private mutating func resize(to capacity: Int) {
        let old = self.entries
        self.entries = Array(repeating: Entry(key: Self.emptyKey, value: nil), count: capacity)
        self.storedCount = 0
        for entry in old where entry.key != Self.emptyKey {
            self.insertNew(entry.key, entry.value!)
        }
    }

    /// The keys, in no particular order.
    var keys: some Sequence<Int32> { self.lazy.map(\.key) }
    /// The values, in no particular order (no copy: the write-progress timer walks them as streams queue bytes).
    var values: some Sequence<Value> { self.lazy.map(\.value) }
}

extension HTTP2StreamTable where Value: AnyObject {
    /// Whether `id` has an entry: `self[id] != nil` without the lookup's retain and release of the value.
    @inline(__always)
    func contains(_ id: Int32) -> Bool {
        if self.newestKey == id { return id != Self.emptyKey }
        return self.storedCount > 0 && self.slot(of: id) != nil
    }

    /// The value for `id` without a retain: valid while the table holds it. For a caller that uses the value
    /// briefly and cannot remove or replace `id`'s entry meanwhile (it calls neither libnghttp2 nor the delegate,
    /// and does not change the table), through `Unmanaged._withUnsafeGuaranteedRef`. Why: each retain and release
    /// is an atomic read-modify-write, ~5 ns on this machine; the subscript's lookup paid a pair (issue 11,
    /// thirty-sixth session: ~14 engine lookups per gRPC call).
    @inline(__always)
    func unretainedValue(for id: Int32) -> Unmanaged<Value>? {
        if self.newestKey == id, id != Self.emptyKey {
            return Unmanaged.passUnretained(self.newestValue.unsafelyUnwrapped)
        }
        return self.storedUnretainedValue(for: id)
    }

    /// ``unretainedValue(for:)`` from the table (never the newest entry's).
    @inline(never)
    private func storedUnretainedValue(for id: Int32) -> Unmanaged<Value>? {
        guard let index = self.slot(of: id) else { return nil }
        return self.entries.withUnsafeBufferPointer { Unmanaged.passUnretained($0[index].value.unsafelyUnwrapped) }
    }
}

extension HTTP2StreamTable: Sequence {
    /// The table's entries, then the newest.
    struct Iterator: IteratorProtocol {
        fileprivate let entries: [Entry]
        fileprivate var index = 0
        fileprivate let newestKey: Int32
        fileprivate var newestValue: Value?

        mutating func next() -> (key: Int32, value: Value)? {
            while self.index < self.entries.count {
                let entry = self.entries[self.index]
                self.index &+= 1
                if entry.key != HTTP2StreamTable.emptyKey { return (entry.key, entry.value!) }
            }
            return self.newestValue.take().map { (key: self.newestKey, value: $0) }
        }
    }

    /// The entries, in no particular order, as `(key:, value:)` pairs.
    func makeIterator() -> Iterator {
        Iterator(entries: self.entries, newestKey: self.newestKey, newestValue: self.newestValue)
    }
}

/// ``HTTP2StreamTable``'s hash seed: one random word per process (one `getrandom` at the first table).
private let streamTableSeed = UInt64.random(in: .min ... .max)

/// ``HTTP2StreamTable`` for a session's owner, keyed by stream: the frontend's stream states, a backend
/// session's calls. Values are class instances held as `AnyObject`, so that this type is not generic (see
/// ``HTTP2StreamTable`` for why); the owner wraps it in a typed accessor, downcasting what it stored itself.
package struct HTTP2StreamObjectTable: Sequence {
    private var table = HTTP2StreamTable<AnyObject>()

    package init() {}

    package subscript(id: HTTP2StreamID) -> AnyObject? {
        get { self.table[id.rawValue] }
        set { self.table[id.rawValue] = newValue }
    }

    /// Whether `id` has an entry (no retain and release of it, unlike `self[id] != nil`).
    package func contains(_ id: HTTP2StreamID) -> Bool { self.table.contains(id.rawValue) }

    /// Whether `id`'s entry is `object` itself: `self[id] === object` without the lookup's retain and release
    /// (issue 11: a sync call's answer checks that its stream is still the one it was started for).
    package func holds(_ object: AnyObject, at id: HTTP2StreamID) -> Bool {
        self.table.unretainedValue(for: id.rawValue)?.toOpaque() == Unmanaged.passUnretained(object).toOpaque()
    }

    @discardableResult
    package mutating func removeValue(forKey id: HTTP2StreamID) -> AnyObject? {
        self.table.removeValue(forKey: id.rawValue)
    }

    package mutating func removeAll() { self.table.removeAll() }

    package var isEmpty: Bool { self.table.isEmpty }
    package var count: Int { self.table.count }
    /// The slots allocated (0, or a power of two from 16; past 64, halved by a removal that leaves them under 1/8
    /// full): for tests.
    package var slotCount: Int { self.table.slotCount }
    /// The slot `id` is looked for first in a table of `slotCount` slots (a power of two): for tests that build
    /// collisions and probes that wrap past the last slot.
    package static func homeSlot(of id: HTTP2StreamID, slotCount: Int) -> Int {
        HTTP2StreamTable<AnyObject>.home(
            of: id.rawValue, shift: UInt64(64 - slotCount.trailingZeroBitCount), seed: streamTableSeed)
    }

    /// A copy of the entries, in no particular order: for the rare walks over every stream (shutdown).
    package func makeIterator() -> IndexingIterator<[(key: HTTP2StreamID, value: AnyObject)]> {
        self.table.map { (key: HTTP2StreamID($0.key), value: $0.value) }.makeIterator()
    }
}
