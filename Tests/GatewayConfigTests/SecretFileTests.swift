import Foundation
import GatewayConfig
import Testing

/// Review 27 M2: tokens, the PostgreSQL password and webhook secrets read from files (`token_file`,
/// `store.password_file`, `webhook.secret_file`), so they stay out of the file that is versioned, templated and
/// diffed; errors name the key and the file, never the secret.
@Suite("secrets read from files")
struct SecretFileTests {
    /// A file holding `content` in a fresh directory; its path.
    static func file(_ content: String, mode: Int = 0o600) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tg-secret-\(UUID().uuidString)").path
        try content.write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        return path
    }

    static func parse(_ yaml: String) throws -> GatewayConfiguration {
        try GatewayConfiguration.parse(yaml: yaml, source: "s.yaml")
    }

    @Test("token_file: its text, whitespace and the final newline trimmed, is the token; the file is remembered")
    func tokenFromFile() throws {
        let path = try Self.file("  0123456789abcdef0123\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let config = try Self.parse("tokens:\n  - {name: ci, token_file: \(path)}\n")
        #expect(config.tokens.first?.token == "0123456789abcdef0123")
        #expect(config.tokens.first?.tokenFile == path)
        #expect(config.warnings.isEmpty)
    }

    @Test("token and token_file both, or neither: refused by path")
    func tokenOneOfTwo() throws {
        let path = try Self.file("0123456789abcdef0123")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let both = #expect(throws: ConfigError.self) {
            try Self.parse("tokens:\n  - {name: ci, token: abcdefabcdefabcdef, token_file: \(path)}\n")
        }
        #expect(both?.path == "tokens[0].token_file")
        #expect(both?.message == "give token or token_file, not both")
        let neither = #expect(throws: ConfigError.self) { try Self.parse("tokens:\n  - {name: ci}\n") }
        #expect(neither?.path == "tokens[0].token")
    }

    @Test("an empty, unreadable or missing file: refused naming the key and the file, never the content")
    func badFiles() throws {
        let empty = try Self.file(" \n\n")
        let controls = try Self.file("secret-part\u{1}more-of-the-secret")
        defer {
            try? FileManager.default.removeItem(atPath: empty)
            try? FileManager.default.removeItem(atPath: controls)
        }
        let emptyError = #expect(throws: ConfigError.self) {
            try Self.parse("tokens:\n  - {name: ci, token_file: \(empty)}\n")
        }
        #expect(emptyError?.message == "\(empty) is empty")
        let missing = #expect(throws: ConfigError.self) {
            try Self.parse("tokens:\n  - {name: ci, token_file: /nonexistent/token}\n")
        }
        #expect(missing?.path == "tokens[0].token_file")
        #expect(missing?.message.hasPrefix("cannot read /nonexistent/token") == true, "\(String(describing: missing))")
        let control = #expect(throws: ConfigError.self) {
            try Self.parse("tokens:\n  - {name: ci, token_file: \(controls)}\n")
        }
        #expect(control?.message.contains("control character") == true)
        #expect(control?.description.contains("secret-part") == false, "the error echoes the secret")
    }

    @Test("store.password_file: postgres only, not with a password in the URL; webhook.secret_file as secret")
    func passwordAndWebhookSecret() throws {
        let path = try Self.file("pg-Pass,word\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try Self.parse(
            "store: {kind: postgres, url: \"postgres://gw@127.0.0.1/gateway\", password_file: \(path)}\n")
        #expect(store.store.password == "pg-Pass,word")
        #expect(store.store.passwordFile == path)
        let twice = #expect(throws: ConfigError.self) {
            try Self.parse(
                "store: {kind: postgres, url: \"postgres://gw:pw@127.0.0.1/gateway\", password_file: \(path)}\n")
        }
        #expect(twice?.message == "store.url has a password already: give it in one place")
        let sqlite = #expect(throws: ConfigError.self) { try Self.parse("store: {password_file: \(path)}\n") }
        #expect(sqlite?.path == "store.password_file")

        let hooked = try Self.parse(
            """
            pools: [{name: p, transport: inprocess}]
            routes: [{namespace: demo, pool: p, webhook: {url: "http://127.0.0.1:9/hooks", secret_file: \(path)}}]
            """)
        #expect(hooked.routes.first?.webhook?.secret == "pg-Pass,word")
        let both = #expect(throws: ConfigError.self) {
            try Self.parse(
                """
                pools: [{name: p, transport: inprocess}]
                routes: [{namespace: demo, pool: p, webhook: {url: "http://127.0.0.1:9/h", secret: s, secret_file: \(path)}}]
                """)
        }
        #expect(both?.path == "routes[0].webhook.secret_file")
    }
}
