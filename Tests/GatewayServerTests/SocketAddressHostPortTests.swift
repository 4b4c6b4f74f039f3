import GatewayServer
import NIOCore
import Testing

@Suite("peer and listen addresses in log lines")
struct SocketAddressHostPortTests {
    @Test("host:port, IPv6 in brackets; never NIO's [IPv4]… description")
    func hostPort() throws {
        #expect(try SocketAddress(ipAddress: "127.0.0.1", port: 48704).hostPort == "127.0.0.1:48704")
        #expect(try SocketAddress(ipAddress: "::1", port: 8080).hostPort == "[::1]:8080")
        #expect(try SocketAddress(unixDomainSocketPath: "/tmp/tg.sock").hostPort == "/tmp/tg.sock")
    }
}
