import NIOCore
import Synchronization

/// The caps on open client connections: all of them (`limits.max_connections`, issue 10, item 1) and those of one
/// peer (`limits.max_connections_per_peer`, review 24 M3). A connection accepted over either is closed at once,
/// logged and counted, so a flood of idle sockets cannot take every file descriptor and starve the backends and
/// the real clients, and one host cannot take every slot from the others (as nginx's `limit_conn` keyed on
/// `$binary_remote_addr` and HAProxy's `src_conn_cur` cap one client's connections).
///
/// The total is an atomic counter, not the tracker's registry: child channels are initialised on several event
/// loops at once, and "count, then add" there would let a burst overshoot the cap. The per-peer counts are a
/// dictionary under a lock: taken once when a connection is accepted and once when it closes, never per request.
final class ConnectionAdmission: Sendable {
    /// Where a connection comes from, as the per-peer cap counts it: an IPv4 address, or an IPv6 /64 (one
    /// subscriber's or one host's prefix: SLAAC and privacy addresses give a host as many addresses in it as it
    /// likes, so counting addresses would cap nothing). An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, a dual-stack
    /// listener's IPv4 client) is its IPv4 address.
    enum Peer: Hashable, Sendable, CustomStringConvertible {
        /// The address as a number (`a.b.c.d` is `a << 24 | b << 16 | c << 8 | d`).
        case ipv4(UInt32)
        /// The address's first 64 bits as a number, the first byte highest.
        case ipv6Prefix(UInt64)

        /// Nil for addresses without a host (Unix domain sockets): not counted per peer.
        init?(_ address: SocketAddress?) {
            switch address {
            // Read from the sockaddr's bytes (Linux layout, RFC 2553: sin_family and sin_port, 2 bytes each, then
            // sin_addr; sin6_flowinfo's 4 bytes before sin6_addr).
            case .v4(let v4):
                let bytes = withUnsafeBytes(of: v4.address) { Array($0[4..<8]) }
                self = .ipv4(bytes.reduce(0) { $0 << 8 | UInt32($1) })
            case .v6(let v6):
                let bytes = withUnsafeBytes(of: v6.address) { Array($0[8..<24]) }
                if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
                    self = .ipv4(bytes[12..<16].reduce(0) { $0 << 8 | UInt32($1) })
                } else {
                    self = .ipv6Prefix(bytes[0..<8].reduce(0) { $0 << 8 | UInt64($1) })
                }
            default:
                return nil
            }
        }

        /// `203.0.113.7`, or `2001:db8:0:1::/64`.
        var description: String {
            switch self {
            case .ipv4(let address):
                return (0..<4).map { String(address >> (24 - 8 * $0) & 0xff) }.joined(separator: ".")
            case .ipv6Prefix(let prefix):
                let groups = (0..<4).map { String(prefix >> (48 - 16 * $0) & 0xffff, radix: 16) }
                return groups.joined(separator: ":") + "::/64"
            }
        }
    }

    /// What ``admit(_:perPeerLimit:)`` decided.
    enum Decision: Equatable {
        case admitted
        /// `limit` connections were open.
        case overLimit
        /// `peer` held `open` connections, the per-peer limit.
        case overPeerLimit(peer: Peer, open: Int)
    }

    let limit: Int
    private let open = Atomic<Int>(0)
    private let rejectedTotal = Atomic<Int>(0)
    private let rejectedPerPeerTotal = Atomic<Int>(0)
    /// Open connections by peer; a peer with none has no entry.
    private let peers = Mutex<[Peer: Int]>([:])

    init(limit: Int) {
        self.limit = limit
    }

    /// Connections refused since start because `limit` were open.
    var rejected: Int { rejectedTotal.load(ordering: .relaxed) }

    /// Connections holding a slot now: from accept to close, in the preface sniff and the TLS handshake too.
    var admitted: Int { open.load(ordering: .relaxed) }

    /// Connections refused since start because their peer held the per-peer limit.
    var rejectedPerPeer: Int { rejectedPerPeerTotal.load(ordering: .relaxed) }

    /// Whether the `count`th refusal of a kind is logged: the first, then every 1000th, so a flood of refused
    /// connections does not also flood the log (every refusal is still counted). The one rule of the serving
    /// listener's two caps and the admin listener's.
    static func isLogged(refusal count: Int) -> Bool { count == 1 || count % 1000 == 0 }

    /// Takes a slot for `channel` until it closes, unless `limit` are open or its peer holds `perPeerLimit` of them
    /// (0: no per-peer cap); a refusal is counted. A peer at its own cap is refused as such even when the total is
    /// reached too: it is the one holding the slots.
    func admit(_ channel: any Channel, perPeerLimit: Int) -> Decision {
        let peer = Peer(channel.remoteAddress)
        if let peer {
            let held: Int? = peers.withLock { counts in
                let open = counts[peer, default: 0]
                if perPeerLimit > 0, open >= perPeerLimit { return open }
                counts[peer] = open + 1
                return nil
            }
            if let held {
                rejectedPerPeerTotal.add(1, ordering: .relaxed)
                return .overPeerLimit(peer: peer, open: held)
            }
        }
        guard takeSlot() else {
            if let peer { release(peer) }
            rejectedTotal.add(1, ordering: .relaxed)
            return .overLimit
        }
        channel.closeFuture.whenComplete { [self] _ in
            open.subtract(1, ordering: .relaxed)
            if let peer { release(peer) }
        }
        return .admitted
    }

    /// The peer with the most open connections and their number (nil when none is counted): who holds the slots,
    /// for the warning of a refusal at `limit`. A walk over every peer, done only when a refusal is logged.
    func topPeer() -> (peer: Peer, open: Int)? {
        peers.withLock { counts in counts.max { $0.value < $1.value }.map { ($0.key, $0.value) } }
    }

    /// Open connections of `peer` now.
    func openConnections(of peer: Peer) -> Int {
        peers.withLock { $0[peer, default: 0] }
    }

    private func takeSlot() -> Bool {
        var current = open.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = open.compareExchange(
                expected: current,
                desired: current + 1,
                ordering: .relaxed
            )
            if exchanged { return true }
            current = original
        }
        return false
    }

    private func release(_ peer: Peer) {
        peers.withLock { counts in
            let open = counts[peer, default: 1] - 1
            counts[peer] = open > 0 ? open : nil
        }
    }
}
