/// The open streams of one connection by stream id: a dictionary, with the stream added last also kept aside and
/// compared first. Used by the engine (``NGHTTP2Session``, keyed by the raw `Int32` id) and by its owners (the
/// gateway's frontend and backend sessions, keyed by ``HTTP2StreamID``).
///
/// Why: every callback and operation of a stream looks it up by id, about eleven times per unary gRPC call in
/// each of the engine's two sessions and about sixteen times in their owners, and a dictionary lookup costs
/// 150–250 instructions (SipHash of the key, then the probe): ~7 k instructions per gRPC call together
/// (bench/callgrind, issue 11). The stream added last is the one most lookups ask for (the call's frontend
/// stream while it is handled, the backend stream opened for it), and one compare answers those; any other id
/// falls through to the dictionary, so many concurrent streams cost one compare more per lookup, nothing else.
///
/// `@inlinable`, so each owner's module specializes it for its key and value (an unspecialized generic would
/// cost more than it saves).
package struct HTTP2StreamTable<Key: Hashable, Value: AnyObject>: Sequence {
    @usableFromInline var byID: [Key: Value] = [:]
    /// The stream added last and its id; nil when there is none (or it was removed).
    @usableFromInline var newestKey: Key?
    @usableFromInline var newest: Value?

    @inlinable
    package init() {}

    @inlinable
    package subscript(key: Key) -> Value? {
        get {
            if let newest = self.newest, key == self.newestKey { return newest }
            return self.byID[key]
        }
        set {
            if let newValue {
                self.byID[key] = newValue
                self.newestKey = key
                self.newest = newValue
            } else {
                self.removeValue(forKey: key)
            }
        }
    }

    @inlinable
    @discardableResult
    package mutating func removeValue(forKey key: Key) -> Value? {
        if key == self.newestKey {
            self.newestKey = nil
            self.newest = nil
        }
        return self.byID.removeValue(forKey: key)
    }

    @inlinable
    package mutating func removeAll() {
        self.byID.removeAll()
        self.newestKey = nil
        self.newest = nil
    }

    @inlinable
    package var isEmpty: Bool { self.byID.isEmpty }
    @inlinable
    package var count: Int { self.byID.count }
    @inlinable
    package var keys: Dictionary<Key, Value>.Keys { self.byID.keys }
    @inlinable
    package var values: Dictionary<Key, Value>.Values { self.byID.values }

    /// The (id, stream) pairs in the dictionary's order (unspecified, as a dictionary's).
    @inlinable
    package func makeIterator() -> Dictionary<Key, Value>.Iterator { self.byID.makeIterator() }
}
