@testable import Backends
import HTTP2Engine
import NIOCore
import NIOPosix
import Testing
import WireCodecs

/// The `Host` / `:authority` a backend is sent: the pool's TLS `server_name` when set (the server that SNI and
/// the certificate check name), else the endpoint's `host:port`.
@Suite("backend authority: server_name names the server")
struct BackendAuthorityTests {
    static func tls(serverName: String?, alpn: String) throws -> BackendTLS {
        try BackendTLS(trustRoots: nil, identity: nil, serverName: serverName, applicationProtocols: [alpn])
    }

    @Test("the endpoint's host:port without TLS or server_name; server_name:port with it; IPv6 in brackets")
    func authority() throws {
        let endpoint = BackendPoolConfiguration.Endpoint(host: "10.0.0.5", port: 8443)
        #expect(endpoint.authority(tls: nil) == "10.0.0.5:8443")
        #expect(endpoint.authority(tls: try Self.tls(serverName: nil, alpn: "h2")) == "10.0.0.5:8443")
        #expect(
            endpoint.authority(tls: try Self.tls(serverName: "runner.internal", alpn: "h2")) == "runner.internal:8443")
        let v6 = BackendPoolConfiguration.Endpoint(host: "::1", port: 50051)
        #expect(v6.authority(tls: nil) == "[::1]:50051")
    }

    @Test(
        "a grpc call's :authority and an http call's Host follow the pool's server_name",
        arguments: [nil, "runner.internal"])
    func requestHeaders(serverName: String?) throws {
        let expected = "\(serverName ?? "127.0.0.1"):9"
        let grpc = GRPCBackendTransport(
            configuration: BackendPoolConfiguration(
                name: "g", transport: .grpc, endpoints: [.init(host: "127.0.0.1", port: 9)],
                tls: try Self.tls(serverName: serverName, alpn: "h2")),
            group: MultiThreadedEventLoopGroup.singleton)
        defer { grpc.close() }
        let headers = try grpc.requestHeaders(
            path: "/trigger.runner.v1.Runner/Run", endpoint: grpc.endpoints[0], request: makeRequest("echo"))
        #expect(headers.filter { $0.name == ":authority" }.map(\.value) == [expected])
        let http = HTTPBackendTransport(
            configuration: BackendPoolConfiguration(
                name: "h", transport: .http, endpoints: [.init(host: "127.0.0.1", port: 9)],
                tls: try Self.tls(serverName: serverName, alpn: "http/1.1")),
            group: MultiThreadedEventLoopGroup.singleton, codecLimits: .defaults)
        defer { http.retire() }
        let head = try HTTPBackendRequestHeadTests.decoded(
            http.requestParts(makeRequest("echo"), endpoint: http.endpoint(at: 0), accept: "application/json").head)
        #expect(head.values(name: "host") == [expected])
    }
}
