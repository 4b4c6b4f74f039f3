import DemoRunner
import Foundation
import GatewayTestSupport
import NIOCore
import NIOPosix
import Testing
import TriggerModel

/// TLS to backends (issue 17, item 2) over real sockets: the demo runner's gRPC and HTTP servers behind a
/// TLS-terminating front (NIOSSL server side) and grpcio's own TLS server (`grpc.ssl_server_credentials`) as an
/// independent peer; certificates made by openssl. Clients are curl and grpcio.
@Suite("TLS to backends: grpc and http pools over TLS, verification, SNI, client certificates", .serialized)
struct BackendTLSTests {
    /// Echoes each input's variables with the call's principal added (what reached the backend).
    struct PrincipalRunner: TriggerRunner {
        func run(_ request: TriggerRequest) async throws -> TriggerResult {
            TriggerResult(
                outputs: request.inputs.map {
                    var variables = $0.variables
                    variables["principal"] = .string(request.principal ?? "")
                    return variables
                })
        }

        func runStreaming(_ request: TriggerRequest) -> AsyncThrowingStream<TriggerEvent, any Error> {
            AsyncThrowingStream { continuation in
                continuation.finish(throwing: GatewayError(.unimplemented, "no streams here"))
            }
        }
    }

    enum Backend { case grpc, http }

    /// A demo runner server (`PrincipalRunner`) behind a TLS front on loopback.
    static func withTLSBackend<T>(
        _ kind: Backend,
        pki: TestCertificates,
        cert: String? = nil,
        key: String? = nil,
        clientCA: String? = nil,
        _ body: (TLSTerminator) async throws -> T
    ) async throws -> T {
        let group = MultiThreadedEventLoopGroup.singleton
        let server =
            switch kind {
            case .grpc:
                try await DemoGRPCServer.bind(host: "127.0.0.1", port: 0, runner: PrincipalRunner(), group: group)
            case .http:
                try await DemoHTTPServer.bind(host: "127.0.0.1", port: 0, runner: PrincipalRunner(), group: group)
            }
        let front = try await TLSTerminator(
            certFile: cert ?? pki.serverCert,
            keyFile: key ?? pki.serverKey,
            applicationProtocols: kind == .grpc ? ["h2"] : ["http/1.1"],
            clientCA: clientCA,
            requireClientCert: clientCA != nil,
            backendPort: server.localAddress!.port!
        )
        do {
            let result = try await body(front)
            await front.close()
            try? await server.close()
            return result
        } catch {
            await front.close()
            try? await server.close()
            throw error
        }
    }

    /// One pool `tls` routed for every namespace.
    static func yaml(transport: String, endpoint: String, tls: String, extra: String = "") -> String {
        """
        pools:
          - name: tls
            transport: \(transport)
            endpoints: ["\(endpoint)"]
            connect_timeout: 2s
            tls: \(tls)
        \(extra.isEmpty ? "" : "    " + extra)
        routes:
          - {namespace: "*", pipeline: "*", pool: tls}
        """
    }

    /// curl's REST trigger of `namespace/echo` on the (cleartext) gateway: HTTP status and body.
    static func trigger(port: Int, namespace: String = "demo", _ variables: String = #"{"k":1}"#) async throws
        -> (status: Int, body: String)
    {
        let curl = try #require(TestProcess.which("curl"), "scripts/test installs curl")
        let output = try await TestProcess.run(
            curl,
            [
                "-sS", "--max-time", "20", "-w", "\n%{http_code}", "-H", "content-type: application/json", "-d",
                #"{"data":[{"variable":\#(variables)}]}"#,
                "http://127.0.0.1:\(port)/v1beta/namespaces/\(namespace)/pipelines/echo/trigger",
            ])
        let text = output.stdoutString
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    @Test("a grpc pool (grpcs://, ca_file) and an http pool (https://) are reached over TLS; health checks use it")
    func grpcAndHTTPOverTLS() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        for kind in [Backend.grpc, .http] {
            try await Self.withTLSBackend(kind, pki: pki) { front in
                let yaml = Self.yaml(
                    transport: kind == .grpc ? "grpc" : "http",
                    endpoint: "\(kind == .grpc ? "grpcs" : "https")://127.0.0.1:\(front.port)",
                    tls: "{ca_file: \(pki.caFile)}",
                    // A generous probe timeout (at most the interval): a 500 ms one expired mid-handshake on a
                    // loaded machine, which the terminator lists as a failed handshake (and which took the endpoint
                    // out: a 503).
                    extra: "health_check: {interval: 3s, timeout: 3s}"
                )
                try await withTestGateway(yaml: yaml) { gateway in
                    // The active health check reaches the endpoint over the same TLS before any call.
                    let probed = await eventually(within: .seconds(10)) { !front.clientSubjects.isEmpty }
                    #expect(probed, "\(kind): no TLS handshake from the health check")
                    for _ in 0..<3 {
                        let answer = try await Self.trigger(port: gateway.port)
                        #expect(answer.status == 200, "\(kind): \(answer.body)")
                        #expect(answer.body.contains(#""k":1"#), "\(kind): \(answer.body)")
                    }
                    #expect(front.handshakeFailures.isEmpty, "\(kind): \(front.handshakeFailures)")
                }
            }
        }
    }

    @Test("grpcio's own TLS server (ssl_server_credentials) as the runner: `tls: true` with a CA file")
    func grpcioTLSServer() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        let runner = try await Self.startGrpcioRunner([pki.serverCert, pki.serverKey])
        defer { runner.signal(SIGKILL) }
        let yaml = Self.yaml(
            transport: "grpc", endpoint: "localhost:\(runner.port)", tls: "{ca_file: \(pki.caFile)}")
        try await withTestGateway(yaml: yaml) { gateway in
            let rest = try await Self.trigger(port: gateway.port)
            #expect(rest.status == 200 && rest.body.contains(#""k":1"#), "\(rest.body)")
            let grpc = try await Peers.grpcio("trigger", port: gateway.port, ["echo", #"[{"k": 2}]"#])
            #expect((grpc["outputs"] as? [[String: Any]])?.first?["k"] as? Int == 2, "\(grpc)")
        }
        await runner.stop(signal: SIGKILL)
    }

    @Test("a wrong CA: curl gets 502 and grpcio UNAVAILABLE naming the certificate; nothing reaches the backend")
    func wrongCA() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        try await Self.withTLSBackend(.grpc, pki: pki) { front in
            let yaml = Self.yaml(
                transport: "grpc", endpoint: "grpcs://127.0.0.1:\(front.port)", tls: "{ca_file: \(pki.otherCAFile)}")
            try await withTestGateway(yaml: yaml) { gateway in
                let rest = try await Self.trigger(port: gateway.port)
                #expect(rest.status == 502, "\(rest.body)")
                #expect(rest.body.contains("certificate did not verify"), "\(rest.body)")
                // Which CAs were tried: the pool's tls.ca_file, else the system's store (never "ca_file" alone).
                #expect(rest.body.contains("not signed by a CA the pool trusts: its tls.ca_file"), "\(rest.body)")
                #expect(!rest.body.contains("\(front.port)"), "an endpoint's address is the operator's: \(rest.body)")
                let grpc = try await Peers.grpcio("trigger", port: gateway.port, ["echo", "[{}]"])
                #expect(grpc["code"] as? String == "UNAVAILABLE", "\(grpc)")
                #expect((grpc["details"] as? String)?.contains("certificate") == true, "\(grpc)")
                #expect(front.clientSubjects.isEmpty, "a handshake completed with the wrong CA")
            }
        }
    }

    @Test("SNI and the name checked: server_name overrides it; a name the certificate lacks fails clearly")
    func serverName() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        // A certificate that names runner.internal only (no IP SANs: NIOSSL also accepts a certificate carrying
        // the connection's IP address, whatever the name).
        let cert = "\(pki.directory)/named.pem"
        let key = "\(pki.directory)/named.key"
        try "subjectAltName=DNS:runner.internal\nextendedKeyUsage=serverAuth"
            .write(toFile: "\(pki.directory)/named.ext", atomically: true, encoding: .utf8)
        for arguments in [
            [
                "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=runner.internal",
                "-keyout", key, "-out", "\(pki.directory)/named.csr",
            ],
            [
                "x509", "-req", "-in", "\(pki.directory)/named.csr", "-CA", pki.caFile, "-CAkey",
                "\(pki.directory)/ca.key", "-CAcreateserial", "-days", "2", "-extfile", "\(pki.directory)/named.ext",
                "-out", cert,
            ],
        ] {
            let out = try await TestProcess.run("/usr/bin/openssl", arguments)
            try #require(out.status == 0, "\(out.stderr)")
        }
        try await Self.withTLSBackend(.http, pki: pki, cert: cert, key: key) { front in
            let endpoint = "https://127.0.0.1:\(front.port)"
            let named = Self.yaml(
                transport: "http", endpoint: endpoint, tls: "{ca_file: \(pki.caFile), server_name: runner.internal}")
            try await withTestGateway(yaml: named) { gateway in
                let answer = try await Self.trigger(port: gateway.port)
                #expect(answer.status == 200, "\(answer.body)")
            }
            for (serverName, expected) in [("", "127.0.0.1"), (", server_name: runner.example", "runner.example")] {
                let yaml = Self.yaml(
                    transport: "http", endpoint: endpoint, tls: "{ca_file: \(pki.caFile)\(serverName)}")
                try await withTestGateway(yaml: yaml) { gateway in
                    let answer = try await Self.trigger(port: gateway.port)
                    #expect(answer.status == 502, "\(answer.body)")
                    #expect(answer.body.contains(#"not valid for \"\#(expected)\""#), "\(answer.body)")
                }
            }
        }
    }

    @Test("Host to an http backend over TLS: the server_name when set (the server behind the address), else the URL's")
    func hostNamesServerName() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        // A recording backend (its 204 is no trigger answer: the call fails, what it was sent is what counts).
        let backend = try await WebhookReceiver.start(failFirst: 0)
        let front = try await TLSTerminator(
            certFile: pki.serverCert, keyFile: pki.serverKey, applicationProtocols: ["http/1.1"],
            backendPort: backend.port)
        defer {
            Task {
                await front.close()
                await backend.stop()
            }
        }
        let endpoint = "https://127.0.0.1:\(front.port)"
        for (serverName, host) in [
            ("", "127.0.0.1:\(front.port)"), (", server_name: localhost", "localhost:\(front.port)"),
        ] {
            let before = backend.requests.count
            let yaml = Self.yaml(transport: "http", endpoint: endpoint, tls: "{ca_file: \(pki.caFile)\(serverName)}")
            try await withTestGateway(yaml: yaml) { gateway in
                _ = try await Self.trigger(port: gateway.port)
            }
            let sent = backend.requests.dropFirst(before)
            #expect(!sent.isEmpty)
            #expect(sent.allSatisfy { $0.path == "/run" && $0.headers["host"] == host }, "\(sent.map(\.headers))")
        }
    }

    @Test("a backend that requires a client certificate: served with cert_file/key_file, refused clearly without")
    func clientCertificate() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        for kind in [Backend.grpc, .http] {
            try await Self.withTLSBackend(kind, pki: pki, clientCA: pki.caFile) { front in
                let endpoint = "\(kind == .grpc ? "grpcs" : "https")://localhost:\(front.port)"
                let transport = kind == .grpc ? "grpc" : "http"
                let with = Self.yaml(
                    transport: transport, endpoint: endpoint,
                    tls: "{ca_file: \(pki.caFile), cert_file: \(pki.clientCert), key_file: \(pki.clientKey)}")
                try await withTestGateway(yaml: with) { gateway in
                    let answer = try await Self.trigger(port: gateway.port)
                    #expect(answer.status == 200, "\(kind): \(answer.body)")
                }
                #expect(front.clientSubjects.contains("alice"), "\(kind): \(front.clientSubjects)")
                let without = Self.yaml(transport: transport, endpoint: endpoint, tls: "{ca_file: \(pki.caFile)}")
                try await withTestGateway(yaml: without) { gateway in
                    let answer = try await Self.trigger(port: gateway.port)
                    #expect(answer.status == 502, "\(kind): \(answer.body)")
                    #expect(answer.body.contains("client certificate"), "\(kind): \(answer.body)")
                }
            }
        }
        // grpcio requiring client auth (require_client_auth=True) sees the gateway's certificate.
        let runner = try await Self.startGrpcioRunner([pki.serverCert, pki.serverKey, pki.caFile])
        defer { runner.signal(SIGKILL) }
        let yaml = Self.yaml(
            transport: "grpc", endpoint: "grpcs://localhost:\(runner.port)",
            tls: "{ca_file: \(pki.caFile), cert_file: \(pki.clientCert), key_file: \(pki.clientKey)}")
        try await withTestGateway(yaml: yaml) { gateway in
            let answer = try await Self.trigger(port: gateway.port)
            #expect(answer.status == 200 && answer.body.contains(#""peer_cn":"alice""#), "\(answer.body)")
        }
        await runner.stop(signal: SIGKILL)
    }

    @Test("a backend that accepts TCP but never answers the ClientHello is cut at connect_timeout")
    func silentHandshake() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        // Accepts and reads, never writes.
        let silent = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        defer { silent.close(promise: nil) }
        var yaml = Self.yaml(
            transport: "http", endpoint: "https://127.0.0.1:\(silent.localAddress!.port!)",
            tls: "{ca_file: \(pki.caFile)}")
        yaml = yaml.replacingOccurrences(of: "connect_timeout: 2s", with: "connect_timeout: 300ms")
        try await withTestGateway(yaml: yaml + "\ntimeouts: {request: 10s}\n") { gateway in
            let started = ContinuousClock.now
            let answer = try await Self.trigger(port: gateway.port)
            let elapsed = ContinuousClock.now - started
            #expect(answer.status == 504, "\(answer.body)")
            #expect(answer.body.contains("TLS handshake with an endpoint timed out after 300ms"), "\(answer.body)")
            // Three tries (retry.max_tries) of at most 300 ms each, well under the 10 s request timeout.
            #expect(elapsed < .seconds(5), "\(elapsed)")
        }
    }

    @Test("the real executable: check-config names unusable TLS files; a wrong CA is logged with the endpoint")
    func executable() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        let gateway = ProcessTests.gatewayPath
        func checkConfig(_ tls: String) async throws -> (status: Int32, output: String) {
            let file = "\(pki.directory)/check-\(UUID().uuidString).yaml"
            try Self.yaml(transport: "grpc", endpoint: "grpcs://127.0.0.1:1", tls: tls)
                .write(toFile: file, atomically: true, encoding: .utf8)
            let out = try await TestProcess.run(gateway, ["check-config", file])
            return (out.status, out.stdoutString + out.stderr)
        }
        let missing = try await checkConfig("{ca_file: \(pki.directory)/nope.pem}")
        #expect(missing.status != 0, "\(missing.output)")
        #expect(missing.output.contains("pools[0].tls.ca_file: cannot read \(pki.directory)/nope.pem: no such file"))
        let notCA = try await checkConfig("{ca_file: \(pki.clientKey)}")
        #expect(notCA.status != 0 && notCA.output.contains("pools[0].tls.ca_file"), "\(notCA.output)")
        let mismatched = try await checkConfig("{cert_file: \(pki.clientCert), key_file: \(pki.serverKey)}")
        #expect(mismatched.output.contains("pools[0].tls.key_file"), "\(mismatched.output)")
        #expect(mismatched.output.contains("is not the private key of the certificate"), "\(mismatched.output)")
        let good = try await checkConfig(
            "{ca_file: \(pki.caFile), cert_file: \(pki.clientCert), key_file: \(pki.clientKey)}")
        #expect(good.status == 0 && good.output.contains(": ok ("), "\(good.output)")
        let example = Peers.repositoryRoot.appendingPathComponent("scripts/example-config.yaml").path
        let exampleOut = try await TestProcess.run(gateway, ["check-config", example])
        #expect(exampleOut.status == 0, "\(exampleOut.stdoutString)\(exampleOut.stderr)")

        try await Self.withTLSBackend(.grpc, pki: pki) { front in
            let config = "\(pki.directory)/wrong-ca.yaml"
            try Self.yaml(
                transport: "grpc", endpoint: "grpcs://127.0.0.1:\(front.port)", tls: "{ca_file: \(pki.otherCAFile)}"
            ).write(toFile: config, atomically: true, encoding: .utf8)
            try await ProcessTests.withGatewayProcess(["--config", config]) { server in
                let answer = try await Self.trigger(port: server.port)
                #expect(answer.status == 502, "\(answer.body)")
                let why = "TLS handshake with an endpoint failed: the endpoint's certificate did not verify"
                #expect(await server.logOccurrences(of: why, timeout: .seconds(5)) >= 1, "\(server.logged)")
                #expect(server.logged.contains("backend.endpoint=127.0.0.1:\(front.port)"), "\(server.logged)")
            }
        }
    }

    /// Starts `Tests/InteropClients/tls_runner.py` (grpcio over TLS).
    static func startGrpcioRunner(_ arguments: [String]) async throws -> TestProcess.Server {
        let script = Peers.repositoryRoot.appendingPathComponent("Tests/InteropClients/tls_runner.py").path
        return try await TestProcess.Server.start(Peers.python, [script] + arguments)
    }
}
