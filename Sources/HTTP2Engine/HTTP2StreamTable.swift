/// The open streams of one session by id, or what a session's owner keeps per stream (the frontend's stream
/// states, a backend session's calls): the entry added last kept aside, every other entry in a dictionary.
///
/// Why: a session looks its stream up by id in nearly every callback and operation, about eleven times per
/// unary call on each of the frontend and backend sessions, and a dictionary lookup costs ~150 to ~250
/// instructions (SipHash of the key, then the probe): ~3.5 k instructions per gRPC call in the engine, and as
/// many again in the frontend's and the backend session's own tables (bench/callgrind, issue 11). The entry
/// added last is the one most lookups ask for (a call's frontend stream while it is handled, the backend
/// stream opened for it), and a compare answers those; any other id falls through to the dictionary, so many
/// concurrent streams cost one compare more per lookup, nothing else.
///
/// The entry added last is *only* aside: it enters the dictionary when a newer one is added (at most once per
/// entry), so a stream that opens and closes while it is the newest, as every stream of one call at a time
/// does, never inserts into or removes from the dictionary (8 dictionary updates per gRPC unary call on the
/// three tables, ~1.6 k instructions; branch hotpath). Under concurrent streams an entry costs what it did
/// before (one insert, one removal). Keys are `Comparable` for one reason: a new key greater than every key
/// the dictionary has held cannot be in it, so adding one (HTTP/2 stream ids only grow, RFC 9113 §5.1.1) needs
/// no lookup to keep a key in one place; a smaller key (a replaced older entry) is looked up and moved.
///
/// Generic, so internal: other modules use ``HTTP2StreamObjectTable``, which is not (a generic type of this
/// module is not specialised in another: its unspecialised lookups, with their generic-metadata look-ups, cost
/// ~8 k instructions per gRPC call more than the dictionaries they replaced; bench/callgrind, branch grpcpass).
struct HTTP2StreamTable<Key: Hashable & Comparable, Value> {
    /// Every entry but ``newest``'s.
    private var older: [Key: Value]
    /// The entry added last (nil when there is none, or it was removed); its key is not in ``older``.
    private var newest: (id: Key, value: Value)?
    /// The greatest key ``older`` has held (nil before the first): a greater key is not in it.
    private var greatestOlderID: Key?

    init() {
        self.older = [:]
        self.newest = nil
        self.greatestOlderID = nil
    }

    subscript(id: Key) -> Value? {
        get {
            if let newest = self.newest, newest.id == id { return newest.value }
            return self.older.isEmpty ? nil : self.older[id]
        }
        set {
            guard let newValue else {
                self.removeValue(forKey: id)
                return
            }
            if let newest = self.newest {
                if newest.id == id {
                    self.newest = (id, newValue)
                    return
                }
                self.older[newest.id] = newest.value
                if self.greatestOlderID.map({ $0 < newest.id }) ?? true { self.greatestOlderID = newest.id }
            }
            // `id` may be an older entry's (a replacement): it moves aside, so it is never in both places.
            if !self.older.isEmpty, let greatest = self.greatestOlderID, id <= greatest {
                self.older.removeValue(forKey: id)
            }
            self.newest = (id, newValue)
        }
    }

    @discardableResult
    mutating func removeValue(forKey id: Key) -> Value? {
        if let newest = self.newest, newest.id == id {
            self.newest = nil
            return newest.value
        }
        return self.older.isEmpty ? nil : self.older.removeValue(forKey: id)
    }

    mutating func removeAll() {
        self.older.removeAll()
        self.newest = nil
        self.greatestOlderID = nil
    }

    var isEmpty: Bool { self.newest == nil && self.older.isEmpty }
    var count: Int { self.older.count + (self.newest == nil ? 0 : 1) }
    /// The keys, in no particular order.
    var keys: Entries<Dictionary<Key, Value>.Keys.Iterator> {
        Entries(older: self.older.keys.makeIterator(), newest: self.newest?.id)
    }
    /// The values, in no particular order (no copy: the write-progress timer walks them as streams queue bytes).
    var values: Entries<Dictionary<Key, Value>.Values.Iterator> {
        Entries(older: self.older.values.makeIterator(), newest: self.newest?.value)
    }

    /// The older entries' iterator, then the newest entry's element.
    struct Entries<Older: IteratorProtocol>: Sequence, IteratorProtocol {
        var older: Older
        var newest: Older.Element?

        mutating func next() -> Older.Element? {
            if let element = self.older.next() { return element }
            defer { self.newest = nil }
            return self.newest
        }
    }
}

extension HTTP2StreamTable: Sequence {
    /// The entries, in no particular order, as `(key:, value:)` pairs.
    func makeIterator() -> Entries<Dictionary<Key, Value>.Iterator> {
        Entries(older: self.older.makeIterator(), newest: self.newest.map { (key: $0.id, value: $0.value) })
    }
}

/// ``HTTP2StreamTable`` for a session's owner, keyed by stream: the frontend's stream states, a backend
/// session's calls. Values are class instances held as `AnyObject`, so that this type is not generic (see
/// ``HTTP2StreamTable`` for why); the owner wraps it in a typed accessor, downcasting what it stored itself.
package struct HTTP2StreamObjectTable: Sequence {
    private var table = HTTP2StreamTable<HTTP2StreamID, AnyObject>()

    package init() {}

    package subscript(id: HTTP2StreamID) -> AnyObject? {
        get { self.table[id] }
        set { self.table[id] = newValue }
    }

    @discardableResult
    package mutating func removeValue(forKey id: HTTP2StreamID) -> AnyObject? { self.table.removeValue(forKey: id) }

    package mutating func removeAll() { self.table.removeAll() }

    package var isEmpty: Bool { self.table.isEmpty }
    package var count: Int { self.table.count }

    /// A copy of the entries, in no particular order: for the rare walks over every stream (shutdown).
    package func makeIterator() -> IndexingIterator<[(key: HTTP2StreamID, value: AnyObject)]> {
        Array(self.table).makeIterator()
    }
}
