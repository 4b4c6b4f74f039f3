import Logging
import NIOCore
import Testing

@testable import GatewayServer

@Suite("peer and listen addresses in log lines")
struct SocketAddressHostPortTests {
    @Test("host:port, IPv6 in brackets; never NIO's [IPv4]… description")
    func hostPort() throws {
        #expect(try SocketAddress(ipAddress: "127.0.0.1", port: 48704).hostPort == "127.0.0.1:48704")
        #expect(try SocketAddress(ipAddress: "::1", port: 8080).hostPort == "[::1]:8080")
        #expect(try SocketAddress(unixDomainSocketPath: "/tmp/tg.sock").hostPort == "/tmp/tg.sock")
    }
}

@Suite("open-file limits in log lines")
struct OpenFileLimitLogTests {
    @Test("RLIM_INFINITY reads \"unlimited\", not 2^64-1 (a JSON number readers round); others their number")
    func unlimited() {
        #expect(GatewayServer.openFileLimit(UInt.max).description == "unlimited")
        #expect(GatewayServer.openFileLimit(1_024).description == "1024")
        #expect(GatewayServer.openFileLimit(UInt.max - 1).description == String(UInt.max - 1))
    }
}
