import NIOCore

/// One value per event loop of a group, fixed at init, found by the loop's identity.
///
/// A scan of a small array, not a `Dictionary`: a group has a loop per core (2 here, rarely over 64), and an
/// identity compare is one instruction where a dictionary hashes the `ObjectIdentifier` with SipHash-1-3 first
/// (~135 instructions per lookup with its probe, against ~50 for this scan of two loops; a REST call makes four
/// lookups: issue 11, bench/README.md "Forty-second session"). A 64-loop group scans at most 64 words.
struct LoopTable<Value: Sendable>: Sendable {
    /// The loops' identities, in the group's order; `values[i]` is `loops[i]`'s.
    private let loops: [ObjectIdentifier]
    private let values: [Value]

    /// A value for each loop of `group`, made by `make` in the group's order.
    init(group: any EventLoopGroup, make: (any EventLoop) -> Value) {
        var loops: [ObjectIdentifier] = []
        var values: [Value] = []
        for loop in group.makeIterator() {
            loops.append(ObjectIdentifier(loop))
            values.append(make(loop))
        }
        self.loops = loops
        self.values = values
    }

    /// No loops: every lookup finds nothing.
    init() {
        loops = []
        values = []
    }

    /// `loop`'s value, or nil when `loop` is not one of the group's.
    subscript(_ loop: any EventLoop) -> Value? {
        let id = ObjectIdentifier(loop)
        for index in loops.indices where loops[index] == id {
            return values[index]
        }
        return nil
    }

    /// Every loop's value, in the group's order.
    var all: [Value] { values }
}
