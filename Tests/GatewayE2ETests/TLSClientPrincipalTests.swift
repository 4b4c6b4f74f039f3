import DemoRunner
import Foundation
import GatewayTestSupport
import NIOCore
import NIOPosix
import Testing

/// A verified client certificate names the principal (issue 17, item 1): its subject, or `tls.client_principals`'
/// mapping; a token still decides when `auth: tokens` has tokens. Driven by curl `--cert` and grpcio with a
/// client certificate; the principal is read where it arrives, at the backend (`x-trigger-principal`).
@Suite("TLS client certificates name the principal", .serialized)
struct TLSClientPrincipalTests {
    /// A gateway with TLS asking for client certificates, routing everything to a demo gRPC runner (cleartext)
    /// that echoes the principal it was sent.
    static func withGateway<T: Sendable>(
        _ pki: TestCertificates,
        tls extra: String = "",
        top: String = "",
        _ body: (TestGateway) async throws -> T
    ) async throws -> T {
        let backend = try await DemoGRPCServer.bind(
            host: "127.0.0.1", port: 0, runner: BackendTLSTests.PrincipalRunner(),
            group: MultiThreadedEventLoopGroup.singleton)
        defer { backend.close(promise: nil) }
        let yaml = """
            tls:
              cert_file: \(pki.serverCert)
              key_file: \(pki.serverKey)
              client_ca_file: \(pki.caFile)
            \(extra.isEmpty ? "" : "  " + extra)
            pools:
              - {name: runner, transport: grpc, endpoints: ["127.0.0.1:\(backend.localAddress!.port!)"]}
            routes:
              - {namespace: "*", pipeline: "*", pool: runner}
            \(top)
            """
        return try await withTestGateway(yaml: yaml, body)
    }

    /// The principal the backend saw for a curl trigger (`nil` for a failed call), and curl's output.
    static func curlPrincipal(_ gateway: TestGateway, _ pki: TestCertificates, _ options: [String]) async throws
        -> (principal: String?, output: String)
    {
        let answer = try await TLSListenerTests.trigger(port: gateway.port, ["--cacert", pki.caFile] + options)
        guard answer.output.contains("status=200"),
            let start = answer.output.firstIndex(of: "{"), let end = answer.output.lastIndex(of: "}")
        else { return (nil, answer.output) }
        let body = try json(ByteBuffer(string: String(answer.output[start...end])))
        let outputs = body["outputs"] as? [[String: Any]]
        return (outputs?.first?["principal"] as? String, answer.output)
    }

    static func clientCert(_ pki: TestCertificates) -> [String] {
        ["--cert", pki.clientCert, "--key", pki.clientKey]
    }

    @Test("the certificate's subject is the principal (curl over HTTP/1.1 and HTTP/2, grpcio); none without one")
    func subjectIsPrincipal() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        try await Self.withGateway(pki) { gateway in
            for version in ["--http1.1", "--http2"] {
                let seen = try await Self.curlPrincipal(gateway, pki, Self.clientCert(pki) + [version])
                #expect(seen.principal == "CN=alice", "\(version): \(seen.output)")
            }
            // The certificate is optional here: without one the call is served with no principal.
            let anonymous = try await Self.curlPrincipal(gateway, pki, [])
            #expect(anonymous.principal == "", "\(anonymous.output)")
            let grpc = try await Peers.grpcio(
                "trigger", port: gateway.port, ["echo", #"[{"k": 1}]"#], tlsCA: pki.caFile,
                tlsClient: (pki.clientCert, pki.clientKey))
            #expect((grpc["outputs"] as? [[String: Any]])?.first?["principal"] as? String == "CN=alice", "\(grpc)")
        }
    }

    @Test("client_principals maps the subject; an unlisted subject stays itself")
    func mapping() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        try await Self.withGateway(pki, tls: #"client_principals: {"CN=alice": alice}"#) { gateway in
            let seen = try await Self.curlPrincipal(gateway, pki, Self.clientCert(pki))
            #expect(seen.principal == "alice", "\(seen.output)")
        }
        try await Self.withGateway(pki, tls: #"client_principals: {"CN=bob": bob}"#) { gateway in
            let seen = try await Self.curlPrincipal(gateway, pki, Self.clientCert(pki))
            #expect(seen.principal == "CN=alice", "\(seen.output)")
        }
    }

    @Test("with auth: tokens the token is still required and names the principal; the certificate does not")
    func tokensWin() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        let tokens = "auth: tokens\ntokens:\n  - {name: carol, token: s3cret-carol}\n"
        try await Self.withGateway(pki, tls: #"client_principals: {"CN=alice": alice}"#, top: tokens) { gateway in
            let withoutToken = try await Self.curlPrincipal(gateway, pki, Self.clientCert(pki))
            #expect(
                withoutToken.principal == nil && withoutToken.output.contains("status=401"), "\(withoutToken.output)")
            let withToken = try await Self.curlPrincipal(
                gateway, pki, Self.clientCert(pki) + ["-H", "authorization: Bearer s3cret-carol"])
            #expect(withToken.principal == "carol", "\(withToken.output)")
        }
    }
}
