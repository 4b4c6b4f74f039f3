import Foundation
import GatewayTestSupport
import NIOCore
import Testing

/// The OpenAPI document (`openapi/openapi.json`) as served at `GET /openapi.json`, validated by
/// openapi-spec-validator, and the running gateway checked against it by schemathesis.
@Suite("OpenAPI document")
struct OpenAPITests {
    static let source = Peers.repositoryRoot.appendingPathComponent("openapi/openapi.json")

    static func tool(_ name: String) throws -> String {
        let path = Peers.repositoryRoot.appendingPathComponent(".venv/bin/\(name)").path
        try #require(FileManager.default.isExecutableFile(atPath: path), "scripts/setup.sh --test installs \(name)")
        return path
    }

    @Test("GET /openapi.json serves openapi/openapi.json, and openapi-spec-validator accepts it as OpenAPI 3.1")
    func servedAndValid() async throws {
        let validator = try Self.tool("openapi-spec-validator")
        try await withTestGateway { gateway in
            let client = try await TestHTTPClient.connect(port: gateway.port)
            let response = try await client.request("GET", "/openapi.json")
            let head = try await client.request("HEAD", "/openapi.json")
            await client.close()
            #expect(head.status == 200 && head.body.readableBytes == 0)
            #expect(head.header("content-length") == String(response.body.readableBytes))
            #expect(response.status == 200)
            #expect(response.header("content-type") == "application/json")
            let source = try String(contentsOf: Self.source, encoding: .utf8)
            #expect(response.bodyString == source.trimmingCharacters(in: .newlines), "the served document is the file")

            let served = FileManager.default.temporaryDirectory.appendingPathComponent("tg-openapi-\(UUID()).json")
            try Data(response.body.readableBytesView).write(to: served)
            defer { try? FileManager.default.removeItem(at: served) }
            let result = try await TestProcess.run(validator, [served.path])
            #expect(result.status == 0, "\(result.stdoutString)\(result.stderr)")
            #expect(result.stdoutString.contains("OK"))
        }
    }

    /// Bounded: a fixed seed and at most 10 cases per operation (about 2,500 requests with the stateful phase,
    /// under a minute and a half here); `timeout` ends it if the gateway stops answering. Checks: schemathesis'
    /// defaults: no 5xx other than the documented 502/503/504 (`openapi/schemathesis.toml`); status code, content
    /// type, headers and body of every response as documented; schema-valid requests taken and schema-violating
    /// ones refused (the document encodes the gateway's rules: formats, patterns, ranges, required members;
    /// `schemathesis.toml` names those it cannot: opaque page tokens, multipart batch-index gaps, JSON text in a
    /// form field; and the documented 501s of Craft's deployment changes).
    @Test("schemathesis: every default check passes: responses conform, valid input is taken, invalid refused")
    func schemathesis() async throws {
        // A schedule, so the schedule routes answer 200 as well as 404.
        let yaml = """
            schedules:
              - name: nightly-report
                cron: "@yearly"
                route: {namespace: demo, pipeline: echo}
            """
        try await withTestGateway(yaml: yaml) { gateway in
            let result = try await Self.runSchemathesis(port: gateway.port)
            #expect(result.status == 0, "\(result.stdoutString)\n\(result.stderr)")
        }
    }

    /// The Craft AI routes (`/api/v1/`) with an access token (without one every call is 401 and nothing past
    /// the authenticator is checked): a schema-valid deployment request with an empty `endpoint_url_path`, a
    /// logs `limit` past 2^53 and `include_io_values=á` were found so.
    @Test("schemathesis on the Craft AI routes with an access token: the same checks past the authenticator")
    func schemathesisCraft() async throws {
        try await withTestGateway { gateway in
            let client = try await TestHTTPClient.connect(port: gateway.port)
            let refresh = try await client.request(
                "POST", "/api/v1/auth/refresh", headers: [("content-type", "application/json")],
                body: ByteBuffer(string: #"{"refresh_token":"schemathesis"}"#))
            await client.close()
            let token =
                try #require(
                    try JSONSerialization.jsonObject(with: Data(refresh.body.readableBytesView)) as? [String: Any]
                )["access_token"] as? String
            let result = try await Self.runSchemathesis(
                port: gateway.port,
                ["-H", "Authorization: Bearer \(try #require(token))", "--include-path-regex", "^/api/v1/"])
            #expect(result.status == 0, "\(result.stdoutString)\n\(result.stderr)")
            #expect(result.stdoutString.contains("Tested: 24"), "every /api/v1 operation: \(result.stdoutString)")
        }
    }

    /// schemathesis against the gateway on `port` with `openapi/schemathesis.toml`, bounded: a fixed seed and at
    /// most 10 cases per operation; `timeout` ends it if the gateway stops answering.
    static func runSchemathesis(port: Int, _ extra: [String] = []) async throws -> TestProcess.Output {
        let schemathesis = try Self.tool("schemathesis")
        let config = Peers.repositoryRoot.appendingPathComponent("openapi/schemathesis.toml").path
        // schemathesis keeps a crash cache under ./.schemathesis: run it in a scratch directory.
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("tg-schemathesis-\(UUID())")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        return try await TestProcess.run(
            "/usr/bin/timeout",
            [
                "300", "/usr/bin/env", "-C", scratch.path,
                schemathesis, "--config-file", config, "run", "http://127.0.0.1:\(port)/openapi.json",
                // Every default check, including that schema-valid requests are taken and schema-violating
                // ones refused: the document states the rules the gateway enforces.
                "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", "10", "--seed", "1",
                "--request-timeout", "20", "--generation-database", "none", "--no-color",
                // A generator health check, not a server one: with the fixed seed, the multipart body of
                // Craft's `/run` sometimes filters out too many examples (it did once the Instill pipeline
                // metadata paths shifted the sequence).
                "--suppress-health-check", "filter_too_much",
            ] + extra)
    }
}
