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
    /// `schemathesis.toml` names the two it cannot: opaque page tokens and multipart batch-index gaps).
    @Test("schemathesis: every default check passes: responses conform, valid input is taken, invalid refused")
    func schemathesis() async throws {
        let schemathesis = try Self.tool("schemathesis")
        // A schedule, so the schedule routes answer 200 as well as 404.
        let yaml = """
            schedules:
              - name: nightly-report
                cron: "@yearly"
                route: {namespace: demo, pipeline: echo}
            """
        try await withTestGateway(yaml: yaml) { gateway in
            let config = Peers.repositoryRoot.appendingPathComponent("openapi/schemathesis.toml").path
            // schemathesis keeps a crash cache under ./.schemathesis: run it in a scratch directory.
            let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("tg-schemathesis-\(UUID())")
            try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: scratch) }
            let result = try await TestProcess.run(
                "/usr/bin/timeout",
                [
                    "300", "/usr/bin/env", "-C", scratch.path,
                    schemathesis, "--config-file", config, "run", "http://127.0.0.1:\(gateway.port)/openapi.json",
                    // Every default check, including that schema-valid requests are taken and schema-violating
                    // ones refused: the document states the rules the gateway enforces.
                    "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", "10", "--seed", "1",
                    "--request-timeout", "20", "--generation-database", "none", "--no-color",
                    // A generator health check, not a server one: with the fixed seed, the multipart body of
                    // Craft's `/run` sometimes filters out too many examples (it did once the Instill pipeline
                    // metadata paths shifted the sequence).
                    "--suppress-health-check", "filter_too_much",
                ])
            #expect(result.status == 0, "\(result.stdoutString)\n\(result.stderr)")
        }
    }
}
