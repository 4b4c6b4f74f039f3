import Foundation
import GatewayApp
import GatewayConfig
import GatewayServer
import GatewayTestSupport
import NIOCore
import Testing

/// TLS on the listen port (issue 17, item 1), driven by independent peers: curl (HTTP/1.1 and HTTP/2 chosen by
/// ALPN), grpcio with TLS credentials, NIOSSL; certificates made by openssl.
@Suite("TLS on the listener: ALPN h2 and http/1.1, cleartext rules, client certificates, reload", .serialized)
struct TLSListenerTests {
    static let body = #"{"data":[{"variable":{"k":1}}]}"#

    static func yaml(_ pki: TestCertificates, extra: String = "", cert: String? = nil, key: String? = nil) -> String {
        """
        tls:
          cert_file: \(cert ?? pki.serverCert)
          key_file: \(key ?? pki.serverKey)
        \(extra.isEmpty ? "" : "  " + extra)
        """
    }

    /// curl's exit status and output (`-w` appends the HTTP version and status on a last line).
    static func curl(_ arguments: [String]) async throws -> (status: Int32, output: String) {
        let curl = try #require(TestProcess.which("curl"), "scripts/test installs curl")
        let output = try await TestProcess.run(curl, ["-sS", "--max-time", "10"] + arguments)
        return (output.status, output.stdoutString + output.stderr)
    }

    static func trigger(port: Int, scheme: String = "https", _ options: [String]) async throws -> (
        status: Int32, output: String
    ) {
        try await curl(
            options + [
                "-w", "\nversion=%{http_version} status=%{http_code}", "-H", "content-type: application/json",
                "-d", body, "\(scheme)://127.0.0.1:\(port)/v1beta/namespaces/demo/pipelines/echo/trigger",
            ]
        )
    }

    @Test("one TLS port: curl over HTTP/1.1 and over HTTP/2 (ALPN), and grpcio with TLS credentials")
    func bothVersionsAndGRPC() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        try await withTestGateway(yaml: Self.yaml(pki)) { gateway in
            let h1 = try await Self.trigger(port: gateway.port, ["--cacert", pki.caFile, "--http1.1"])
            #expect(h1.status == 0 && h1.output.contains("version=1.1 status=200"), "\(h1.output)")
            #expect(h1.output.contains(#""k":1"#), "\(h1.output)")
            let h2 = try await Self.trigger(port: gateway.port, ["--cacert", pki.caFile, "--http2"])
            #expect(h2.status == 0 && h2.output.contains("version=2 status=200"), "\(h2.output)")
            let grpc = try await Peers.grpcio(
                "trigger", port: gateway.port, ["echo", #"[{"k": 2}]"#], tlsCA: pki.caFile)
            #expect((grpc["outputs"] as? [[String: Any]])?.first?["k"] as? Int == 2, "\(grpc)")
            // A client that trusts another CA is refused by its own verification (curl: 60).
            let wrong = try await Self.trigger(port: gateway.port, ["--cacert", pki.otherCAFile])
            #expect(wrong.status == 60, "\(wrong.output)")
        }
    }

    @Test(
        "TLS 1.2 offers ECDHE with AEAD only: static-RSA key exchange and CBC suites are refused, ECDHE-GCM is served"
    )
    func tls12CipherSuites() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        try await withTestGateway(yaml: Self.yaml(pki)) { gateway in
            // The test certificate is ECDSA (P-256), so static-RSA key exchange cannot be offered here at all; the
            // CBC suites NIOSSL's default list has for it can. curl's exit 35: the handshake failed (no suite in
            // common).
            for refused in ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA256"] {
                let answer = try await Self.trigger(
                    port: gateway.port, ["--cacert", pki.caFile, "--tlsv1.2", "--tls-max", "1.2", "--ciphers", refused])
                #expect(answer.status == 35, "\(refused): \(answer.output)")
            }
            for served in ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"] {
                let answer = try await Self.trigger(
                    port: gateway.port,
                    ["--cacert", pki.caFile, "--tlsv1.2", "--tls-max", "1.2", "--ciphers", served, "--http2"])
                #expect(
                    answer.status == 0 && answer.output.contains("version=2 status=200"), "\(served): \(answer.output)")
            }
        }
    }

    @Test("h2c on a TLS-only port that sends no request is closed at the preface timeout, not left to idle")
    func refusedConnectionBounded() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        try await withTestGateway(yaml: Self.yaml(pki) + "\ntimeouts: {preface: 500ms, idle: 60s}") { gateway in
            let start = ContinuousClock.now
            let socket = try await SlowSocket.connect(port: gateway.port)
            defer { socket.shutdown() }
            // The client preface and an empty SETTINGS frame, then nothing.
            #expect(socket.send(Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0]))
            let outcome = try await socket.waitForClose(timeout: .seconds(10))
            #expect(outcome.closedByServer, "still open after \(outcome.elapsed)")
            // Not before the preface timeout (counted from after the connect), and well before idle's 60 s.
            #expect(outcome.ended - start >= .milliseconds(500), "closed after \(outcome.ended - start)")
            #expect(outcome.ended - start < .seconds(10))
        }
    }

    @Test(
        "cleartext on a TLS-only port: HTTP/1.1 and h2c get a readable 400, gRPC INVALID_ARGUMENT saying why; with allow_plaintext it is served too"
    )
    func cleartextRules() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        try await withTestGateway(yaml: Self.yaml(pki)) { gateway in
            let plain = try await Self.trigger(port: gateway.port, scheme: "http", [])
            #expect(plain.output.contains("status=400"), "\(plain.output)")
            #expect(plain.output.contains("this port requires TLS"), "\(plain.output)")
            // Review 10, finding 4: h2c and gRPC clients read the reason too, as an answer to their request (a
            // bare GOAWAY after the server preface made grpcio reconnect in a loop, without backoff).
            let h2c = try await Self.trigger(port: gateway.port, scheme: "http", ["--http2-prior-knowledge"])
            #expect(h2c.output.contains("version=2 status=400"), "\(h2c.output)")
            #expect(h2c.output.contains("this port requires TLS"), "\(h2c.output)")
            // Both refusals are counted (the scrape itself is over TLS).
            let scrape = try await Self.curl(["--cacert", pki.caFile, "https://127.0.0.1:\(gateway.port)/metrics"])
            let metrics = Exposition(scrape.output)
            #expect(metrics.samples[#"trigger_gateway_connections_rejected_total{reason="tls_required"}"#] == 2)
            #expect(metrics.samples[#"trigger_gateway_connections_rejected_total{reason="max_connections"}"#] == 0)
            // Review 17, finding 5: each surface reads the HTTP/1.1 refusal in its own shape (it was text/plain,
            // which craft-ai-sdk reported as "invalid response content" and abacusai as a bare ApiException).
            #expect(plain.output.contains(#""code":3"#), "Instill's shape: \(plain.output)")
            for (path, shape) in [
                ("/api/v0/describePipeline?pipelineId=echo", #""success":false"#),
                ("/api/v1/pipelines/echo", #""request_id""#),
            ] {
                let answer = try await Self.curl([
                    "-i", "http://127.0.0.1:\(gateway.port)\(path)",
                ])
                #expect(answer.output.contains("HTTP/1.1 400"), "\(path): \(answer.output)")
                #expect(answer.output.lowercased().contains("content-type: application/json"), "\(answer.output)")
                #expect(answer.output.contains(shape), "\(path): \(answer.output)")
                #expect(answer.output.contains("this port requires TLS"), "\(path): \(answer.output)")
            }
            if let nghttp = TestProcess.which("nghttp") {
                // The connection then ends with GOAWAY(NO_ERROR).
                let out = try await TestProcess.run(nghttp, ["-v", "http://127.0.0.1:\(gateway.port)/healthz"])
                let text = out.stdoutString + out.stderr
                #expect(text.contains("this port requires TLS") && text.contains("GOAWAY"), "\(text)")
            }
            // Under a 20 s deadline: a retry loop would end as DEADLINE_EXCEEDED, not with the answer.
            let grpc = try await Peers.grpcio("trigger", port: gateway.port, ["echo", #"[{"k": 2}]"#, "20"])
            #expect(grpc["code"] as? String == "INVALID_ARGUMENT", "\(grpc)")
            #expect((grpc["details"] as? String)?.contains("this port requires TLS") == true, "\(grpc)")
            // An upload gets the answer too (its body read and dropped, within the refused connection's bound).
            let upload = FileManager.default.temporaryDirectory.appendingPathComponent("tls-refusal-\(UUID()).json")
            defer { try? FileManager.default.removeItem(at: upload) }
            try Data(("{\"inputs\":[{\"b\":\"" + String(repeating: "x", count: 4 << 20) + "\"}]}").utf8).write(
                to: upload)
            let big = try await Self.curl([
                "--http2-prior-knowledge", "-w", "\nversion=%{http_version} status=%{http_code}",
                "-H", "content-type: application/json", "--data-binary", "@\(upload.path)",
                "http://127.0.0.1:\(gateway.port)/v1beta/namespaces/demo/pipelines/echo/trigger",
            ])
            #expect(big.output.contains("version=2 status=400"), "\(big.output)")
            #expect(big.output.contains("this port requires TLS"), "\(big.output)")
        }
        try await withTestGateway(yaml: Self.yaml(pki, extra: "allow_plaintext: true")) { gateway in
            let plain = try await Self.trigger(port: gateway.port, scheme: "http", [])
            #expect(plain.output.contains("version=1.1 status=200"), "\(plain.output)")
            let h2c = try await Self.trigger(port: gateway.port, scheme: "http", ["--http2-prior-knowledge"])
            #expect(h2c.output.contains("version=2 status=200"), "\(h2c.output)")
            let tls = try await Self.trigger(port: gateway.port, ["--cacert", pki.caFile, "--http2"])
            #expect(tls.output.contains("version=2 status=200"), "\(tls.output)")
        }
    }

    @Test("a TLS handshake that stalls (one record byte, or a partial ClientHello) is closed at the preface timeout")
    func stalledHandshakeClosed() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        try await withTestGateway(yaml: Self.yaml(pki) + "\ntimeouts: {preface: 200ms}\n") { gateway in
            // 0x16 alone; then the record header and the start of a ClientHello whose announced length never comes.
            for bytes: [UInt8] in [[0x16], [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03]] {
                // Read before connect: the server's timer starts at accept, after this instant, so a close at the
                // timeout is never seen earlier than 200 ms from it however loaded the machine (the wait's own
                // start can come late, past part of the timeout). The wait's end is only a bound against a hang.
                let beforeConnect = ContinuousClock.now
                let socket = try await SlowSocket.connect(port: gateway.port)
                _ = socket.send(bytes)
                let outcome = try await socket.waitForClose(timeout: .seconds(60))
                #expect(outcome.closedByServer, "still open after \(outcome.elapsed)")
                let closedAfter = outcome.ended - beforeConnect
                #expect(closedAfter >= .milliseconds(200), "closed \(closedAfter) after connect: before the timeout")
            }
            // The port still serves a real client afterwards.
            let served = try await Self.trigger(port: gateway.port, ["--cacert", pki.caFile])
            #expect(served.output.contains("status=200"), "\(served.output)")
        }
    }

    @Test("require_client_cert: a handshake without a certificate fails; one signed by client_ca_file is served")
    func clientCertificates() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        let yaml = Self.yaml(pki, extra: "client_ca_file: \(pki.caFile)\n  require_client_cert: true")
        try await withTestGateway(yaml: yaml) { gateway in
            let without = try await Self.trigger(port: gateway.port, ["--cacert", pki.caFile])
            #expect(without.status != 0 && !without.output.contains("status=200"), "\(without.output)")
            let with = try await Self.trigger(
                port: gateway.port, ["--cacert", pki.caFile, "--cert", pki.clientCert, "--key", pki.clientKey]
            )
            #expect(with.status == 0 && with.output.contains("status=200"), "\(with.output)")
            // A certificate from another CA is not one the gateway trusts.
            let foreign = try await Self.trigger(
                port: gateway.port,
                ["--cacert", pki.caFile, "--cert", pki.otherServerCert, "--key", pki.otherServerKey]
            )
            #expect(!foreign.output.contains("status=200"), "\(foreign.output)")
        }
    }

    @Test(
        "a reload with a renewed certificate: new connections get it, an open connection keeps working; its expiry on /metrics and in the report"
    )
    func reloadCertificate() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        try await withTestGateway(yaml: Self.yaml(pki)) { gateway in
            let open = try await TestHTTPClient.connect(port: gateway.port, tlsCA: pki.caFile)
            let first = try await open.request("GET", "/healthz")
            #expect(first.status == 200)
            // Review 10, finding 3: the certificate's expiry on /metrics, with the standard process metrics.
            func gauge(_ name: String) async throws -> Double? {
                let text = try await open.request("GET", "/metrics").bodyString
                let line = text.split(separator: "\n").first { $0.hasPrefix(name + " ") }
                return line.flatMap { Double($0.split(separator: " ").last ?? "") }
            }
            let now = Date().timeIntervalSince1970
            let expiry = try #require(try await gauge("trigger_gateway_tls_certificate_expiry_timestamp_seconds"))
            // TestCertificates signs for 2 days.
            #expect(expiry > now + 86_400 && expiry < now + 3 * 86_400, "\(expiry)")
            let started = try #require(try await gauge("process_start_time_seconds"))
            #expect(started <= now + 1 && started > now - 86_400, "\(started)")
            let openFDs = try #require(try await gauge("process_open_fds"))
            let maxFDs = try #require(try await gauge("process_max_fds"))
            #expect(openFDs >= 3 && openFDs < maxFDs, "\(openFDs) of \(maxFDs)")
            // The same certificate again: the reload names none; the other one: it names it.
            #expect(try gateway.reload(yaml: Self.yaml(pki)).certificate == nil)
            let report = try gateway.reload(yaml: Self.yaml(pki, cert: pki.otherServerCert, key: pki.otherServerKey))
            let certificate = try #require(report.certificate)
            #expect(certificate.subject == "CN=localhost")
            #expect(abs(certificate.notValidAfter.timeIntervalSince1970 - expiry) < 60, "\(certificate)")
            #expect(
                try await gauge("trigger_gateway_tls_certificate_expiry_timestamp_seconds")
                    == certificate.notValidAfter.timeIntervalSince1970)
            let renewed = try await Self.trigger(port: gateway.port, ["--cacert", pki.otherCAFile])
            #expect(renewed.output.contains("status=200"), "\(renewed.output)")
            let old = try await Self.trigger(port: gateway.port, ["--cacert", pki.caFile])
            #expect(old.status == 60, "\(old.output)")
            // The connection opened before the reload still has its session.
            let again = try await open.request("GET", "/healthz")
            #expect(again.status == 200)
            await open.close()
        }
    }
}

extension TLSListenerTests {
    /// Review 8, finding 2: a file whose `tls:` block was lost must not turn the TLS port into cleartext.
    @Test("a reload cannot switch TLS off (nor on): refused with the key path, the listener keeps its protocol")
    func reloadCannotToggleTLS() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        try await withTestGateway(yaml: Self.yaml(pki)) { gateway in
            let error = #expect(throws: ConfigError.self) { try gateway.reload(yaml: "log: {level: info}\n") }
            #expect(error?.path == "tls", "\(String(describing: error))")
            #expect(
                error?.message.contains("cannot be switched off by a reload") == true, "\(String(describing: error))")
            let tls = try await Self.trigger(port: gateway.port, ["--cacert", pki.caFile])
            #expect(tls.output.contains("status=200"), "\(tls.output)")
            let plain = try await Self.trigger(port: gateway.port, scheme: "http", [])
            #expect(
                plain.output.contains("status=400") && plain.output.contains("this port requires TLS"),
                "\(plain.output)")
            // New certificates are still applied by a reload that keeps `tls:`.
            _ = try gateway.reload(yaml: Self.yaml(pki, cert: pki.otherServerCert, key: pki.otherServerKey))
            let renewed = try await Self.trigger(port: gateway.port, ["--cacert", pki.otherCAFile])
            #expect(renewed.output.contains("status=200"), "\(renewed.output)")
        }
        try await withTestGateway { gateway in
            let error = #expect(throws: ConfigError.self) { try gateway.reload(yaml: Self.yaml(pki)) }
            #expect(error?.path == "tls", "\(String(describing: error))")
            let plain = try await Self.trigger(port: gateway.port, scheme: "http", [])
            #expect(plain.output.contains("status=200"), "cleartext until a restart: \(plain.output)")
        }
    }
}

/// `ListenerTLS.load`: what an operator gets wrong, refused when the configuration loads.
@Suite("ListenerTLS.load refuses unusable files with the key path and the reason")
struct ListenerTLSLoadTests {
    @Test(
        "key files in operator words: a cert+key bundle and EC parameters + key load; encrypted keys say how to decrypt; DER says convert; no library internals"
    )
    func keyFileShapes() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        let dir = pki.directory
        func openssl(_ arguments: [String]) async throws {
            let out = try await TestProcess.run("/usr/bin/openssl", arguments)
            #expect(out.status == 0, "openssl \(arguments): \(out.stderr)")
        }
        func message(_ keyFile: String) -> String? {
            do {
                _ = try ListenerTLS.load(.init(certFile: pki.serverCert, keyFile: keyFile))
                return nil
            } catch {
                return error.message
            }
        }
        let key = try String(contentsOfFile: pki.serverKey, encoding: .utf8)
        let cert = try String(contentsOfFile: pki.serverCert, encoding: .utf8)
        // haproxy's bundle (certificate, then key) and `openssl ecparam -genkey`'s EC PARAMETERS + key: the key.
        try (cert + key).write(toFile: "\(dir)/bundle.pem", atomically: false, encoding: .utf8)
        #expect(message("\(dir)/bundle.pem") == nil)
        try await openssl(["ec", "-in", pki.serverKey, "-out", "\(dir)/sec1.key"])
        let parameters = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
        try (parameters + String(contentsOfFile: "\(dir)/sec1.key", encoding: .utf8))
            .write(toFile: "\(dir)/ecparam.key", atomically: false, encoding: .utf8)
        #expect(message("\(dir)/ecparam.key") == nil)

        try await openssl(["pkey", "-in", pki.serverKey, "-aes256", "-passout", "pass:x", "-out", "\(dir)/enc8.key"])
        try await openssl(["ec", "-in", pki.serverKey, "-aes256", "-passout", "pass:x", "-out", "\(dir)/enc1.key"])
        try await openssl(["pkey", "-in", pki.serverKey, "-outform", "DER", "-out", "\(dir)/key.der"])
        try (key + key).write(toFile: "\(dir)/two.key", atomically: false, encoding: .utf8)
        try "not a key\n".write(toFile: "\(dir)/garbage.key", atomically: false, encoding: .utf8)
        let expected = [
            "enc8.key": "the key is encrypted; write it unencrypted (openssl pkey -in \(dir)/enc8.key -out",
            "enc1.key": "the key is encrypted; write it unencrypted (openssl pkey -in \(dir)/enc1.key -out",
            "key.der": "is not PEM text (DER? convert it: openssl pkey -inform DER -in \(dir)/key.der -out",
            "garbage.key": "not a PEM private key (PKCS#8, SEC1 or PKCS#1): no -----BEGIN … PRIVATE KEY----- block",
            "two.key": "holds 2 private keys; key_file must hold one",
        ]
        for (file, says) in expected {
            let text = try #require(message("\(dir)/\(file)"), "\(file) loaded")
            #expect(text.contains(says), "\(file): \(text)")
            #expect(!text.contains("ASN1Error") && !text.contains(".swift"), "\(file): \(text)")
        }
        #expect(message(pki.serverCert)?.contains("holds no PEM private key (found CERTIFICATE") == true)
    }

    @Test("missing file, key of another certificate, expired, not yet valid, require_client_cert without a CA")
    func refusals() async throws {
        let pki = try await TestCertificates.make()
        defer { pki.remove() }
        #expect(throws: Never.self) {
            _ = try ListenerTLS.load(.init(certFile: pki.serverCert, keyFile: pki.serverKey))
        }

        func failure(_ configuration: ListenerTLSConfiguration, now: Date = Date()) -> ListenerTLS.Failure? {
            do {
                _ = try ListenerTLS.load(configuration, now: now)
                return nil
            } catch {
                return error
            }
        }
        let missing = failure(.init(certFile: "\(pki.directory)/nope.pem", keyFile: pki.serverKey))
        #expect(
            missing?.path == "tls.cert_file" && missing?.message.contains("no such file") == true,
            "\(String(describing: missing))")
        let mismatched = failure(.init(certFile: pki.serverCert, keyFile: pki.clientKey))
        #expect(mismatched?.path == "tls.key_file", "\(String(describing: mismatched))")
        #expect(mismatched?.message.contains("is not the private key of the certificate") == true)
        let expired = failure(
            .init(certFile: pki.serverCert, keyFile: pki.serverKey), now: Date().addingTimeInterval(10 * 86_400))
        #expect(expired?.message.contains("expired") == true, "\(String(describing: expired))")
        let early = failure(
            .init(certFile: pki.serverCert, keyFile: pki.serverKey), now: Date().addingTimeInterval(-86_400))
        #expect(early?.message.contains("not valid before") == true, "\(String(describing: early))")
        let notPEM = failure(.init(certFile: pki.serverKey, keyFile: pki.serverKey))
        #expect(notPEM?.path == "tls.cert_file", "\(String(describing: notPEM))")

        #expect(throws: ConfigError.self) {
            _ = try GatewayConfiguration.parse(
                yaml: "tls: {cert_file: a.pem, key_file: a.key, require_client_cert: true}", source: "t.yaml")
        }
        let parsed = try GatewayConfiguration.parse(
            yaml: "tls: {cert_file: a.pem, key_file: a.key, allow_plaintext: true, client_ca_file: ca.pem}",
            source: "t.yaml")
        #expect(
            parsed.tls
                == ListenerTLSConfiguration(
                    certFile: "a.pem", keyFile: "a.key", allowPlaintext: true, clientCAFile: "ca.pem"))
    }
}
