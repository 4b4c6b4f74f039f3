import Foundation
import GatewayTestSupport
import NIOCore
import Testing

/// With client certificates as the principal (`auth: none`, the certificate optional), each principal sees only
/// its own operations on every surface, and a client without a certificate is the anonymous principal: it sees
/// only anonymous operations, never a certificate holder's (finding H3 of the twenty-fourth review: a cert-less
/// client read, listed and cancelled everyone's operations, and on Craft any client read any execution's
/// outputs). Driven by curl `--cert` over TLS and grpcio with a client certificate; the rule itself is
/// `Operation.isVisible(to:)` (`OperationVisibilityTests`).
@Suite("TLS client certificates: operations stay their principal's on every surface", .serialized)
struct TLSPrincipalIsolationTests {
    /// Who calls: `alice` (`CN=alice`, mapped to `alice`), `bob` (`CN=bob`, unmapped) or no certificate.
    enum Caller: CaseIterable, CustomStringConvertible {
        case alice, bob, anonymous
        var description: String {
            switch self {
            case .alice: "alice"
            case .bob: "bob"
            case .anonymous: "no certificate"
            }
        }
    }

    static func withGateway<T: Sendable>(
        _ pki: TestCertificates, _ body: (TestGateway) async throws -> T
    ) async throws -> T {
        let yaml = """
            tls:
              cert_file: \(pki.serverCert)
              key_file: \(pki.serverKey)
              client_ca_file: \(pki.caFile)
              client_principals: {"CN=alice": alice}
            pools:
              - {name: demo, transport: inprocess}
            routes:
              - {namespace: demo, pipeline: "*", pool: demo}
            craft: {namespace: demo}
            abacus: {namespace: demo}
            """
        return try await withTestGateway(yaml: yaml, body)
    }

    /// curl as `who` (`-sS`, 10 s); the status and the body.
    static func curl(
        _ pki: TestCertificates, _ who: Caller, _ arguments: [String]
    ) async throws -> (status: Int, body: String) {
        var options = ["--cacert", pki.caFile, "-w", "\n%{http_code}"]
        switch who {
        case .alice: options += ["--cert", pki.clientCert, "--key", pki.clientKey]
        case .bob: options += ["--cert", pki.otherClientCert, "--key", pki.otherClientKey]
        case .anonymous: break
        }
        let answer = try await TLSListenerTests.curl(options + arguments)
        let body = answer.output.split(separator: "\n", omittingEmptySubsequences: false).dropLast().joined(
            separator: "\n")
        let status = Int(answer.output.split(separator: "\n").last ?? "") ?? 0
        return (status, body)
    }

    static func url(_ gateway: TestGateway, _ path: String) -> String { "https://127.0.0.1:\(gateway.port)\(path)" }

    /// The id of an async Instill operation `who` starts of `pipeline` with `variables`.
    static func triggerAsync(
        _ gateway: TestGateway, _ pki: TestCertificates, _ who: Caller, _ pipeline: String, _ variables: String
    ) async throws -> String {
        let answer = try await curl(
            pki, who,
            [
                "-H", "content-type: application/json", "-d", #"{"data":[{"variable":\#(variables)}]}"#,
                url(gateway, "/v1beta/namespaces/demo/pipelines/\(pipeline)/trigger-async"),
            ])
        try #require(answer.status == 200, "\(answer)")
        let name = try #require(
            (try json(ByteBuffer(string: answer.body))["operation"] as? [String: Any])?["name"] as? String)
        return String(name.dropFirst("operations/".count))
    }

    @Test("Instill REST and gRPC: the owner reads, lists and cancels; another certificate and none get 404")
    func instill() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        try await Self.withGateway(pki) { gateway in
            let done = try await Self.triggerAsync(gateway, pki, .alice, "echo", #"{"secret":"alice-data"}"#)
            let running = try await Self.triggerAsync(gateway, pki, .alice, "sleep", #"{"ms":20000}"#)
            let anonymous = try await Self.triggerAsync(gateway, pki, .anonymous, "echo", #"{"k":1}"#)
            for caller in Caller.allCases {
                let own = caller == .alice
                for id in [done, running] {
                    let read = try await Self.curl(pki, caller, [Self.url(gateway, "/v1beta/operations/\(id)")])
                    #expect(read.status == (own ? 200 : 404), "\(caller) reads \(id): \(read)")
                    #expect(read.body.contains("alice-data") == (own && id == done), "\(caller): \(read)")
                }
                let list = try await Self.curl(pki, caller, [Self.url(gateway, "/v1beta/operations")])
                #expect(list.status == 200, "\(caller): \(list)")
                #expect(list.body.contains(done) == own && list.body.contains(running) == own, "\(caller): \(list)")
                // Anonymous operations are the anonymous caller's: a certificate holder does not see them.
                #expect(list.body.contains(anonymous) == (caller == .anonymous), "\(caller): \(list)")
                let other = try await Self.curl(pki, caller, [Self.url(gateway, "/v1beta/operations/\(anonymous)")])
                #expect(other.status == (caller == .anonymous ? 200 : 404), "\(caller): \(other)")

                // gRPC GetOperation over the same TLS port, with the caller's certificate or none.
                let client: (cert: String, key: String)? =
                    switch caller {
                    case .alice: (pki.clientCert, pki.clientKey)
                    case .bob: (pki.otherClientCert, pki.otherClientKey)
                    case .anonymous: nil
                    }
                let grpc = try await Peers.grpcio(
                    "get-operation", port: gateway.port, [done], tlsCA: pki.caFile, tlsClient: client)
                if own {
                    #expect(grpc["name"] as? String == "operations/\(done)", "\(grpc)")
                } else {
                    #expect(grpc["code"] as? String == "NOT_FOUND", "\(caller): \(grpc)")
                }
            }
            for caller in [Caller.bob, .anonymous] {
                let cancel = try await Self.curl(
                    pki, caller, ["-X", "POST", Self.url(gateway, "/v1beta/operations/\(running):cancel")])
                #expect(cancel.status == 404, "\(caller) cancels: \(cancel)")
            }
            let still = try await Self.curl(pki, .alice, [Self.url(gateway, "/v1beta/operations/\(running)")])
            #expect(still.body.contains(#""done":false"#), "\(still)")
            let cancel = try await Self.curl(
                pki, .alice, ["-X", "POST", Self.url(gateway, "/v1beta/operations/\(running):cancel")])
            #expect(cancel.status == 200 && cancel.body.contains("cancelled"), "\(cancel)")
        }
    }

    @Test("Craft: the owner reads an execution, its outputs and cancels; another certificate and none get 404")
    func craft() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        try await Self.withGateway(pki) { gateway in
            // With auth off any refresh token is taken; the access token names nobody, the connection does.
            var tokens: [String: String] = [:]
            for caller in Caller.allCases {
                let refresh = try await Self.curl(
                    pki, caller,
                    [
                        "-H", "content-type: application/json", "-d", #"{"refresh_token":"alice"}"#,
                        Self.url(gateway, "/api/v1/auth/refresh"),
                    ])
                try #require(refresh.status == 200, "\(caller): \(refresh)")
                tokens["\(caller)"] = try #require(
                    try json(ByteBuffer(string: refresh.body))["access_token"] as? String)
            }
            func craft(_ caller: Caller, _ arguments: [String]) async throws -> (status: Int, body: String) {
                try await Self.curl(pki, caller, ["-H", "authorization: Bearer \(tokens["\(caller)"]!)"] + arguments)
            }
            func run(_ pipeline: String, _ inputs: String) async throws -> String {
                let answer = try await craft(
                    .alice,
                    [
                        "--data-urlencode", "json_inputs=\(inputs)",
                        Self.url(gateway, "/api/v1/pipelines/\(pipeline)/run"),
                    ])
                try #require(answer.status == 200, "\(answer)")
                return try #require(try json(ByteBuffer(string: answer.body))["execution_id"] as? String)
            }
            let done = try await run("echo", #"{"secret":"alice-data"}"#)
            let running = try await run("sleep", #"{"ms":20000}"#)
            // Alice's Craft execution is alice's on the Instill path too (it was recorded with her principal).
            let instill = try await Self.curl(pki, .alice, [Self.url(gateway, "/v1beta/operations/\(done)")])
            #expect(instill.status == 200, "\(instill)")
            for caller in Caller.allCases {
                let own = caller == .alice
                let read = try await craft(caller, [Self.url(gateway, "/api/v1/executions/\(done)")])
                #expect(read.status == (own ? 200 : 404), "\(caller): \(read)")
                let outputs = try await craft(caller, [Self.url(gateway, "/api/v1/executions/\(done)/outputs")])
                #expect(outputs.status == (own ? 200 : 404), "\(caller): \(outputs)")
                #expect(outputs.body.contains("alice-data") == own, "\(caller): \(outputs)")
                let list = try await craft(caller, [Self.url(gateway, "/api/v1/pipelines/echo/executions")])
                #expect(list.body.contains(done) == own, "\(caller): \(list)")
            }
            for caller in [Caller.bob, .anonymous] {
                let cancel = try await craft(
                    caller, ["-X", "DELETE", Self.url(gateway, "/api/v1/executions/\(running)")])
                #expect(cancel.status == 404, "\(caller) cancels: \(cancel)")
            }
            let cancel = try await craft(.alice, ["-X", "DELETE", Self.url(gateway, "/api/v1/executions/\(running)")])
            #expect(cancel.status == 200, "\(cancel)")
        }
    }

    @Test("Abacus: the owner describes and lists its pipeline versions; another certificate and none do not")
    func abacus() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        try await Self.withGateway(pki) { gateway in
            func abacus(_ caller: Caller, _ arguments: [String]) async throws -> (status: Int, body: String) {
                try await Self.curl(pki, caller, ["-H", "apiKey: any"] + arguments)
            }
            let started = try await abacus(
                .alice,
                [
                    "-H", "content-type: application/json", "-d",
                    #"{"pipelineId":"echo","pipelineVariableMappings":[]}"#, Self.url(gateway, "/api/v0/runPipeline"),
                ])
            try #require(started.status == 200, "\(started)")
            let id = try #require(
                (try json(ByteBuffer(string: started.body))["result"] as? [String: Any])?["pipelineVersion"] as? String)
            for caller in Caller.allCases {
                let own = caller == .alice
                let describe = try await abacus(
                    caller, [Self.url(gateway, "/api/v0/describePipelineVersion?pipelineVersion=\(id)")])
                #expect(describe.status == (own ? 200 : 404), "\(caller): \(describe)")
                let list = try await abacus(caller, [Self.url(gateway, "/api/v0/listPipelineVersions?pipelineId=echo")])
                #expect(list.status == 200 && list.body.contains(id) == own, "\(caller): \(list)")
            }
        }
    }
}
