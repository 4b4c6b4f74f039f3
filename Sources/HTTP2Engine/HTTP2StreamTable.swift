/// The open streams of one session by id, or what a session's owner keeps per stream (the frontend's stream
/// states, a backend session's calls): a dictionary, with the entry added last also kept aside and compared
/// first.
///
/// Why: a session looks its stream up by id in nearly every callback and operation, about eleven times per
/// unary call on each of the frontend and backend sessions, and a dictionary lookup costs ~150 to ~250
/// instructions (SipHash of the key, then the probe): ~3.5 k instructions per gRPC call in the engine, and as
/// many again in the frontend's and the backend session's own tables (bench/callgrind, issue 11). The entry
/// added last is the one most lookups ask for (a call's frontend stream while it is handled, the backend
/// stream opened for it), and a compare answers those; any other id falls through to the dictionary, so many
/// concurrent streams cost one compare more per lookup, nothing else.
///
/// Generic, so internal: other modules use ``HTTP2StreamObjectTable``, which is not (a generic type of this
/// module is not specialised in another: its unspecialised lookups, with their generic-metadata look-ups, cost
/// ~8 k instructions per gRPC call more than the dictionaries they replaced; bench/callgrind, branch grpcpass).
struct HTTP2StreamTable<Key: Hashable, Value> {
    private var byID: [Key: Value]
    /// The entry added last and its id (nil when there is none, or it was removed).
    private var newestID: Key?
    private var newest: Value?

    init() {
        self.byID = [:]
        self.newestID = nil
        self.newest = nil
    }

    subscript(id: Key) -> Value? {
        get {
            if let newest = self.newest, self.newestID == id { return newest }
            return self.byID[id]
        }
        set {
            if let newValue {
                self.byID[id] = newValue
                self.newestID = id
                self.newest = newValue
            } else {
                self.removeValue(forKey: id)
            }
        }
    }

    @discardableResult
    mutating func removeValue(forKey id: Key) -> Value? {
        if self.newestID == id {
            self.newestID = nil
            self.newest = nil
        }
        return self.byID.removeValue(forKey: id)
    }

    mutating func removeAll() {
        self.byID.removeAll()
        self.newestID = nil
        self.newest = nil
    }

    var isEmpty: Bool { self.byID.isEmpty }
    var count: Int { self.byID.count }
    var keys: Dictionary<Key, Value>.Keys { self.byID.keys }
    var values: Dictionary<Key, Value>.Values { self.byID.values }
}

extension HTTP2StreamTable: Sequence {
    /// The entries in the dictionary's order, as `(key:, value:)` pairs.
    func makeIterator() -> Dictionary<Key, Value>.Iterator { self.byID.makeIterator() }
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

    package func makeIterator() -> Dictionary<HTTP2StreamID, AnyObject>.Iterator { self.table.makeIterator() }
}
