import GatewayConfig
import Routing
import Testing
import TriggerModel

@Suite("NamespaceDirectory and ResourceUID")
struct NamespaceDirectoryTests {
    static let directory = NamespaceDirectory(
        namespaces: [
            .init(id: "acme", kind: .organization), .init(id: "carol", kind: .user),
            .init(id: "bob", kind: .organization),
        ],
        tokens: [
            .init(name: "alice", token: "a", requesters: ["acme"]),
            .init(name: "bob", token: "b"),
            .init(name: "root", token: "r", requesters: ["*"]),
            .init(name: "ops", token: "o", requesters: ["shadow"]),
        ],
        routes: [.init(namespace: "team", pool: "p"), .init(namespace: "acme", pool: "p")],
        authRequired: true
    )

    @Test("UUIDv5 in the URL namespace: RFC 9562's and Python's uuid5 values")
    func uuidV5() {
        // Computed with Python's uuid module: uuid.uuid5(uuid.NAMESPACE_URL, name).
        #expect(ResourceUID.namespace("acme") == "8b2c31f3-cbb8-5983-8753-10a6cb2e1fa3")
        #expect(ResourceUID.v5("https://www.python.org/") == "5406f80d-92e9-51cd-a176-77445955e733")
    }

    @Test("kinds: declared first, then principals are users, then routed namespaces organizations")
    func kinds() {
        let d = Self.directory
        #expect(d.namespace(id: "acme")?.kind == .organization)
        #expect(d.namespace(id: "carol")?.kind == .user)
        #expect(d.namespace(id: "alice")?.kind == .user)
        #expect(d.namespace(id: "bob")?.kind == .organization, "declared wins over the principal rule")
        #expect(d.namespace(id: "team")?.kind == .organization)
        #expect(d.namespace(id: "team")?.name == "organizations/team")
        #expect(d.namespace(id: "alice")?.name == "users/alice")
        #expect(d.namespace(id: "nobody") == nil)
        #expect(d.namespace(id: "") == nil)
        #expect(d.namespace(id: "a/b") == nil)
        let wildcard = NamespaceDirectory(routes: [.init(namespace: "*", pool: "p")])
        #expect(wildcard.namespace(id: "anything")?.kind == .organization)
    }

    @Test("uids map back, case-insensitively")
    func uidLookup() {
        let uid = ResourceUID.namespace("carol")
        #expect(Self.directory.namespace(uid: uid)?.id == "carol")
        #expect(Self.directory.namespace(uid: uid.uppercased())?.id == "carol")
        #expect(Self.directory.namespace(uid: ResourceUID.namespace("nobody")) == nil)
    }

    @Test("checkRequester: itself, listed, `*`; others, unknown and non-UUIDs refused")
    func checkRequester() throws {
        let d = Self.directory
        let acme = ResourceUID.namespace("acme")
        #expect(try d.checkRequester(uid: acme, principal: "alice") == acme)
        #expect(try d.checkRequester(uid: acme.uppercased(), principal: "alice") == acme)
        #expect(try d.checkRequester(uid: ResourceUID.namespace("alice"), principal: "alice") != "")
        #expect(try d.checkRequester(uid: ResourceUID.namespace("team"), principal: "root") != "")
        let denied = #expect(throws: GatewayError.self) { try d.checkRequester(uid: acme, principal: "bob") }
        #expect(denied?.code == .permissionDenied)
        let unknown = #expect(throws: GatewayError.self) {
            try d.checkRequester(uid: ResourceUID.namespace("nobody"), principal: "root")
        }
        #expect(unknown?.code == .permissionDenied)
        // Named only under a token's requesters and routed nowhere: the uid maps back, but it is no namespace.
        let shadow = #expect(throws: GatewayError.self) {
            try d.checkRequester(uid: ResourceUID.namespace("shadow"), principal: "ops")
        }
        #expect(shadow?.code == .permissionDenied)
        for bad in [
            "acme", "", "8b2c31f3cbb85983875310a6cb2e1fa3", "8b2c31f3-cbb8-5983-8753-10a6cb2e1fa",
            "g" + acme.dropFirst(),
        ] {
            let error = #expect(throws: GatewayError.self, "\(bad)") {
                try d.checkRequester(uid: bad, principal: "alice")
            }
            #expect(error?.code == .invalidArgument)
        }
    }

    @Test("auth off: any UUID passes, nothing else")
    func authOff() throws {
        let d = NamespaceDirectory()
        #expect(
            try d.checkRequester(uid: "2F1C1BDE-7C5B-4C0E-9A55-000000000001", principal: nil)
                == "2f1c1bde-7c5b-4c0e-9a55-000000000001")
        #expect(throws: GatewayError.self) { try d.checkRequester(uid: "x", principal: nil) }
    }

    @Test("RouteTable.releases: the releases routes name for a pipeline, exact or through `*`")
    func releases() {
        let table = RouteTable(routes: [
            .init(namespace: "n", pipeline: "p", release: "v2", pool: "a"),
            .init(namespace: "n", pipeline: "p", release: "v1", pool: "a"),
            .init(namespace: "n", pipeline: "*", release: "beta", pool: "a"),
            .init(namespace: "n", pipeline: "q", release: "v9", pool: "a"),
            .init(namespace: "n", pipeline: "p", pool: "a"),
        ])
        #expect(table.releases(of: PipelineRef(namespace: "n", pipeline: "p")) == ["beta", "v1", "v2"])
        #expect(table.releases(of: PipelineRef(namespace: "n", pipeline: "p", release: "v1")) == ["beta", "v1", "v2"])
        #expect(table.releases(of: PipelineRef(namespace: "m", pipeline: "p")).isEmpty)
    }
}
