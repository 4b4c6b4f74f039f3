#if canImport(Glibc)
    import Glibc
#endif
import GatewayConfig
import NIOCore
import Testing

@testable import GatewayServer

@Suite("systemd socket activation (sd_listen_fds(3))")
struct SocketActivationTests {
    static let pid: Int32 = 4242

    @Test("LISTEN_FDS=1 with our LISTEN_PID: descriptor 3, with the first LISTEN_FDNAMES entry")
    func ours() throws {
        #expect(
            try SocketActivation.request(
                environment: ["LISTEN_FDS": "1", "LISTEN_PID": "4242", "LISTEN_FDNAMES": "gateway"], pid: Self.pid)
                == .socket(descriptor: 3, name: "gateway"))
        #expect(
            try SocketActivation.request(environment: ["LISTEN_FDS": "1", "LISTEN_PID": "4242"], pid: Self.pid)
                == .socket(descriptor: 3, name: nil))
        #expect(
            try SocketActivation.request(
                environment: ["LISTEN_FDS": "1", "LISTEN_PID": "4242", "LISTEN_FDNAMES": ""], pid: Self.pid)
                == .socket(descriptor: 3, name: nil))
    }

    @Test("no LISTEN_FDS, LISTEN_FDS=0: bind listen; another process's LISTEN_PID, or none: not ours")
    func notOurs() throws {
        #expect(try SocketActivation.request(environment: [:], pid: Self.pid) == .none)
        #expect(
            try SocketActivation.request(environment: ["LISTEN_FDS": "0", "LISTEN_PID": "4242"], pid: Self.pid) == .none
        )
        #expect(
            try SocketActivation.request(environment: ["LISTEN_FDS": "1", "LISTEN_PID": "4241"], pid: Self.pid)
                == .notOurs(listenPID: "4241"))
        #expect(
            try SocketActivation.request(environment: ["LISTEN_FDS": "1"], pid: Self.pid) == .notOurs(listenPID: nil))
    }

    @Test("malformed values and more than one socket are refused with the variable named")
    func refused() {
        #expect(throws: SocketActivationError("LISTEN_PID=x is not a process id")) {
            try SocketActivation.request(environment: ["LISTEN_FDS": "1", "LISTEN_PID": "x"], pid: Self.pid)
        }
        #expect(throws: SocketActivationError("LISTEN_FDS=one is not a count of descriptors")) {
            try SocketActivation.request(environment: ["LISTEN_FDS": "one", "LISTEN_PID": "4242"], pid: Self.pid)
        }
        #expect(throws: SocketActivationError.self) {
            try SocketActivation.request(environment: ["LISTEN_FDS": "2", "LISTEN_PID": "4242"], pid: Self.pid)
        }
    }

    @Test("a listening TCP socket gives its bound address; a bound one not listening, a UDP socket, a file: refused")
    func descriptorChecks() throws {
        func socketBound(_ type: Int32) throws -> CInt {
            let fd = socket(AF_INET, type, 0)
            let loopback = try SocketAddress(ipAddress: "127.0.0.1", port: 0)
            #expect(loopback.withSockAddr { bind(fd, $0, socklen_t($1)) } == 0)
            return fd
        }
        let listening = try socketBound(Int32(SOCK_STREAM.rawValue))
        defer { close(listening) }
        #expect(listen(listening, 8) == 0)
        let address = try SocketActivation.listeningAddress(of: listening)
        #expect(address.host == "127.0.0.1")
        #expect(address.port > 0)

        let bound = try socketBound(Int32(SOCK_STREAM.rawValue))
        defer { close(bound) }
        #expect {
            try SocketActivation.listeningAddress(of: bound)
        } throws: { ($0 as? SocketActivationError)?.message.contains("is not listening") == true }

        let datagram = try socketBound(Int32(SOCK_DGRAM.rawValue))
        defer { close(datagram) }
        #expect {
            try SocketActivation.listeningAddress(of: datagram)
        } throws: { ($0 as? SocketActivationError)?.message.contains("is not a TCP socket") == true }

        let file = open("/dev/null", O_RDONLY)
        defer { close(file) }
        #expect {
            try SocketActivation.listeningAddress(of: file)
        } throws: { ($0 as? SocketActivationError)?.message.hasSuffix("is not a socket") == true }
    }
}
