import GatewayConfig
@testable import GatewayServer
import NIOCore
import NIOEmbedded
import Testing

/// `limits.max_connections` and `limits.max_connections_per_peer` (review 24, M3) at accept: who counts as one
/// peer (an IPv4 address, an IPv6 /64, an IPv4-mapped address as its IPv4 one), each cap at its edge and just past
/// it, and a slot given back when its connection closes. The real-socket tests are in SlowClientTests.
@Suite("Connection admission: the total and per-peer caps")
struct ConnectionAdmissionTests {
    typealias Peer = ConnectionAdmission.Peer

    static func peer(_ ip: String) throws -> Peer? {
        Peer(try SocketAddress(ipAddress: ip, port: 40_000))
    }

    @Test("an IPv4 address is one peer; an IPv6 /64 is one peer; an IPv4-mapped address is its IPv4 address")
    func peerKeys() throws {
        #expect(try Self.peer("203.0.113.7") == .ipv4(0xcb00_7107))
        #expect(try Self.peer("203.0.113.7")?.description == "203.0.113.7")
        #expect(try Self.peer("203.0.113.7") != Self.peer("203.0.113.8"))
        #expect(try Self.peer("2001:db8:1:2::a") == Self.peer("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        #expect(try Self.peer("2001:db8:1:2::a") != Self.peer("2001:db8:1:3::a"))
        #expect(try Self.peer("2001:db8:1:2::a")?.description == "2001:db8:1:2::/64")
        #expect(try Self.peer("::ffff:203.0.113.7") == Self.peer("203.0.113.7"))
        #expect(try Self.peer("::1") == .ipv6Prefix(0))
        #expect(Peer(try SocketAddress(unixDomainSocketPath: "/tmp/x.sock")) == nil)
        #expect(Peer(nil) == nil)
    }

    /// An embedded channel connected from `ip` (its remote address), on `loop`.
    static func connection(from ip: String, loop: EmbeddedEventLoop) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: ip, port: 40_000)).wait()
        return channel
    }

    @Test("a peer's connections up to max_connections_per_peer are admitted, one more is refused; a close frees one")
    func perPeerEdge() throws {
        let loop = EmbeddedEventLoop()
        let admission = ConnectionAdmission(limit: 100)
        var held: [EmbeddedChannel] = []
        for _ in 0..<3 {
            let channel = try Self.connection(from: "198.51.100.1", loop: loop)
            #expect(admission.admit(channel, perPeerLimit: 3) == .admitted)
            held.append(channel)
        }
        let over = try Self.connection(from: "198.51.100.1", loop: loop)
        #expect(admission.admit(over, perPeerLimit: 3) == .overPeerLimit(peer: .ipv4(0xc633_6401), open: 3))
        #expect(admission.rejectedPerPeer == 1)
        #expect(admission.rejected == 0)
        // Another peer is not affected.
        #expect(admission.admit(try Self.connection(from: "198.51.100.2", loop: loop), perPeerLimit: 3) == .admitted)
        #expect(admission.topPeer()?.open == 3)
        // One of the three closes: its peer may connect again, once.
        _ = try held.removeFirst().finish(acceptAlreadyClosed: true)
        loop.run()
        #expect(try admission.openConnections(of: #require(try Self.peer("198.51.100.1"))) == 2)
        #expect(admission.admit(try Self.connection(from: "198.51.100.1", loop: loop), perPeerLimit: 3) == .admitted)
        #expect(admission.admit(try Self.connection(from: "198.51.100.1", loop: loop), perPeerLimit: 3) != .admitted)
        // 0: no per-peer cap.
        #expect(admission.admit(try Self.connection(from: "198.51.100.1", loop: loop), perPeerLimit: 0) == .admitted)
    }

    @Test("two IPv6 addresses of one /64 share its per-peer slots; another /64 has its own")
    func ipv6Prefix() throws {
        let loop = EmbeddedEventLoop()
        let admission = ConnectionAdmission(limit: 100)
        #expect(admission.admit(try Self.connection(from: "2001:db8:1:2::a", loop: loop), perPeerLimit: 2) == .admitted)
        #expect(admission.admit(try Self.connection(from: "2001:db8:1:2::b", loop: loop), perPeerLimit: 2) == .admitted)
        let third = admission.admit(try Self.connection(from: "2001:db8:1:2::c", loop: loop), perPeerLimit: 2)
        #expect(third == .overPeerLimit(peer: .ipv6Prefix(0x2001_0db8_0001_0002), open: 2))
        #expect(admission.admit(try Self.connection(from: "2001:db8:1:3::a", loop: loop), perPeerLimit: 2) == .admitted)
    }

    @Test(
        "at max_connections a peer under its own cap is refused as max_connections, and its per-peer slot is given back"
    )
    func totalEdge() throws {
        let loop = EmbeddedEventLoop()
        let admission = ConnectionAdmission(limit: 2)
        #expect(admission.admit(try Self.connection(from: "192.0.2.1", loop: loop), perPeerLimit: 5) == .admitted)
        #expect(admission.admit(try Self.connection(from: "192.0.2.2", loop: loop), perPeerLimit: 5) == .admitted)
        #expect(admission.admit(try Self.connection(from: "192.0.2.3", loop: loop), perPeerLimit: 5) == .overLimit)
        #expect(admission.rejected == 1)
        #expect(try admission.openConnections(of: #require(try Self.peer("192.0.2.3"))) == 0)
    }
}
