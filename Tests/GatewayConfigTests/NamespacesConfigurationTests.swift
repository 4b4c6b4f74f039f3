import GatewayConfig
import Testing

@Suite("namespaces and tokens[].requesters: configuration")
struct NamespacesConfigurationTests {
    @Test("namespaces declare kinds; a token's requesters list exact ids or *")
    func parsed() throws {
        let yaml = """
            tokens:
              - {name: alice, token: t1, requesters: [acme, "*"]}
              - {name: bob, token: t2}
            namespaces:
              - {id: acme, kind: organization}
              - {id: carol, kind: user}
            """
        let config = try GatewayConfiguration.parse(yaml: yaml, source: "n.yaml")
        #expect(config.namespaces == [.init(id: "acme", kind: .organization), .init(id: "carol", kind: .user)])
        #expect(config.tokens.map(\.requesters) == [["acme", "*"], []])
        #expect(GatewayConfiguration.defaults.namespaces.isEmpty)
    }

    @Test(
        "bad entries are refused with their path",
        arguments: [
            ("namespaces:\n  - {id: acme}\n", "namespaces[0].kind"),
            ("namespaces:\n  - {id: acme, kind: team}\n", "namespaces[0].kind"),
            ("namespaces:\n  - {id: \"a/b\", kind: user}\n", "namespaces[0].id"),
            ("namespaces:\n  - {id: \"*\", kind: user}\n", "namespaces[0].id"),
            ("namespaces:\n  - {id: a, kind: user}\n  - {id: a, kind: organization}\n", "namespaces[1].id"),
            ("namespaces:\n  - {id: a, kind: user, extra: 1}\n", "namespaces[0].extra"),
            ("tokens:\n  - {name: a, token: t, requesters: [\"x/y\"]}\n", "tokens[0].requesters[0]"),
            ("tokens:\n  - {name: a, token: t, requesters: acme}\n", "tokens[0].requesters"),
        ]
    )
    func refused(yaml: String, path: String) {
        let error = #expect(throws: ConfigError.self) { try GatewayConfiguration.parse(yaml: yaml, source: "n.yaml") }
        #expect(error?.path == path, "\(String(describing: error))")
    }
}
