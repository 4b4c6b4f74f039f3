import FoundationEssentials
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

@Suite("certificate times in log lines")
struct CertificateLogTimeTests {
    /// The start-up and reload lines wrote `tls.not_valid_after="2026-12-07 18:21:43 +0000"` (`Date`'s
    /// description) where every other time in the log is RFC 3339.
    @Test("RFC 3339 with milliseconds, UTC; a whole second held a hair under in the Double rounds to it")
    func rfc3339() {
        #expect(ListenerTLS.logTime(Date(timeIntervalSince1970: 1_796_667_703)) == "2026-12-07T18:21:43.000Z")
        #expect(
            ListenerTLS.logTime(Date(timeIntervalSince1970: 1_796_667_703.0.nextDown)) == "2026-12-07T18:21:43.000Z")
    }
}
