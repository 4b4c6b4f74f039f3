/// The open streams of one session by id (``NGHTTP2Session/streams``): a dictionary, with the stream added
/// last also kept aside and compared first.
///
/// Why: a session looks its stream up by id in nearly every callback and operation, about eleven times per
/// unary call on each of the frontend and backend sessions, and a `[Int32: _]` lookup costs ~150 instructions
/// (SipHash of the key, then the probe): ~3.5 k instructions per gRPC call (bench/callgrind, issue 11). The
/// stream added last is the one most lookups ask for (a call's frontend stream while it is handled, the
/// backend stream opened for it), and a compare answers those; any other id falls through to the dictionary,
/// so many concurrent streams cost one compare more per lookup, nothing else.
struct HTTP2StreamTable {
    private var byID: [Int32: HTTP2StreamState] = [:]
    /// The stream added last and its id (0, never a stream's, when there is none).
    private var newestID: Int32 = 0
    private var newest: HTTP2StreamState?

    subscript(id: Int32) -> HTTP2StreamState? {
        get {
            if id == self.newestID, let newest = self.newest { return newest }
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
    mutating func removeValue(forKey id: Int32) -> HTTP2StreamState? {
        if id == self.newestID {
            self.newestID = 0
            self.newest = nil
        }
        return self.byID.removeValue(forKey: id)
    }

    mutating func removeAll() {
        self.byID.removeAll()
        self.newestID = 0
        self.newest = nil
    }

    var isEmpty: Bool { self.byID.isEmpty }
    var count: Int { self.byID.count }
    var keys: Dictionary<Int32, HTTP2StreamState>.Keys { self.byID.keys }
    var values: Dictionary<Int32, HTTP2StreamState>.Values { self.byID.values }
}
