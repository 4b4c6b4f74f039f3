import GatewayConfig
import Routing
import Testing
import TriggerModel

@Suite("RouteTable")
struct RouteTableTests {
    /// Every combination of exact/`*` namespace and pipeline, with and without a release, each to its own
    /// pool named after its shape, listed least specific first so that list order cannot explain a win.
    static let table = RouteTable(routes: [
        RouteConfiguration(namespace: "*", pipeline: "*", pool: "any"),
        RouteConfiguration(namespace: "*", pipeline: "*", release: "v1", pool: "any@v1"),
        RouteConfiguration(namespace: "*", pipeline: "echo", pool: "any/echo"),
        RouteConfiguration(namespace: "*", pipeline: "echo", release: "v1", pool: "any/echo@v1"),
        RouteConfiguration(namespace: "acme", pipeline: "*", pool: "acme"),
        RouteConfiguration(namespace: "acme", pipeline: "*", release: "v1", pool: "acme@v1"),
        RouteConfiguration(namespace: "acme", pipeline: "echo", pool: "acme/echo"),
        RouteConfiguration(namespace: "acme", pipeline: "echo", release: "v1", pool: "acme/echo@v1"),
    ])

    @Test(
        "the most specific route wins: namespace, then pipeline, then release",
        arguments: [
            ("acme", "echo", "v1", "acme/echo@v1"),
            ("acme", "echo", "v2", "acme/echo"),
            ("acme", "echo", nil, "acme/echo"),
            ("acme", "chat", "v1", "acme@v1"),
            ("acme", "chat", nil, "acme"),
            ("other", "echo", "v1", "any/echo@v1"),
            ("other", "echo", "v9", "any/echo"),
            ("other", "chat", "v1", "any@v1"),
            ("other", "chat", nil, "any"),
        ] as [(String, String, String?, String)]
    )
    func specificity(namespace: String, pipeline: String, release: String?, pool: String) {
        let resolved = Self.table.resolve(PipelineRef(namespace: namespace, pipeline: pipeline, release: release))
        #expect(resolved?.pool == pool)
        #expect(resolved.map { Self.table.entries[$0.routeIndex].route.pool } == pool)
    }

    /// Few namespaces are scanned, many hashed (`RouteTable.maxScannedNamespaces`): the same answers either way,
    /// for names of one length (`ns01`, `ns02`: told apart by their bytes) and of others, listed in any order.
    @Test(
        "each exact namespace gets its own routes, whether the table scans its namespaces or hashes them",
        arguments: [1, 2, RouteTable.maxScannedNamespaces, RouteTable.maxScannedNamespaces + 1, 40]
    )
    func namespacesScannedOrHashed(count: Int) {
        var routes = [RouteConfiguration(namespace: "*", pipeline: "*", pool: "any")]
        for n in (0..<count).reversed() {
            let namespace = n % 3 == 0 ? "team-\(n)-long-enough-to-be-a-heap-string" : "ns\(n < 10 ? "0" : "")\(n)"
            routes.append(RouteConfiguration(namespace: namespace, pipeline: "echo", pool: "\(namespace)/echo"))
            routes.append(RouteConfiguration(namespace: namespace, pipeline: "*", pool: namespace))
        }
        let table = RouteTable(routes: routes)
        for n in 0..<count {
            let namespace = n % 3 == 0 ? "team-\(n)-long-enough-to-be-a-heap-string" : "ns\(n < 10 ? "0" : "")\(n)"
            #expect(table.resolve(PipelineRef(namespace: namespace, pipeline: "echo"))?.pool == "\(namespace)/echo")
            #expect(table.resolve(PipelineRef(namespace: namespace, pipeline: "chat"))?.pool == namespace)
        }
        for stranger in ["ns99", "ns0", "nsxx", "team-0-long-enough-to-be-a-heap-strinG", ""] {
            #expect(table.resolve(PipelineRef(namespace: stranger, pipeline: "echo"))?.pool == "any", "\(stranger)")
        }
    }

    @Test(
        "an id holding a slash (a %2F in its REST segment) matches no route, not even *",
        arguments: [("ac/me", "echo", nil), ("acme", "ec/ho", nil), ("acme", "echo", "v/1")]
            as [(String, String, String?)]
    )
    func slashInIdMatchesNothing(namespace: String, pipeline: String, release: String?) {
        #expect(Self.table.resolve(PipelineRef(namespace: namespace, pipeline: pipeline, release: release)) == nil)
    }

    @Test("a route with a release matches only that release; without one, every release")
    func releaseMatching() {
        let table = RouteTable(routes: [
            RouteConfiguration(namespace: "demo", pipeline: "echo", release: "v2", pool: "pinned")
        ])
        #expect(table.resolve(PipelineRef(namespace: "demo", pipeline: "echo", release: "v2"))?.pool == "pinned")
        #expect(table.resolve(PipelineRef(namespace: "demo", pipeline: "echo", release: "v3")) == nil)
        #expect(table.resolve(PipelineRef(namespace: "demo", pipeline: "echo")) == nil)

        let open = RouteTable(routes: [RouteConfiguration(namespace: "demo", pipeline: "echo", pool: "all")])
        #expect(open.resolve(PipelineRef(namespace: "demo", pipeline: "echo", release: "v3"))?.pool == "all")
        #expect(open.resolve(PipelineRef(namespace: "demo", pipeline: "echo"))?.pool == "all")
        #expect(open.resolve(PipelineRef(namespace: "demo", pipeline: "upper")) == nil)
        #expect(open.resolve(PipelineRef(namespace: "Demo", pipeline: "echo")) == nil)
    }

    @Test("equally specific routes: the first listed wins")
    func tiesGoToFirst() {
        let table = RouteTable(routes: [
            RouteConfiguration(namespace: "x", pipeline: "*", pool: "unrelated"),
            RouteConfiguration(namespace: "demo", pipeline: "*", pool: "first"),
            RouteConfiguration(namespace: "demo", pipeline: "*", pool: "second"),
        ])
        let resolved = table.resolve(PipelineRef(namespace: "demo", pipeline: "echo"))
        #expect(resolved?.pool == "first")
        #expect(resolved?.routeIndex == 1)
    }

    @Test("an exact namespace beats a wildcard namespace even when the latter names the pipeline and release")
    func namespaceDominates() {
        let table = RouteTable(routes: [
            RouteConfiguration(namespace: "*", pipeline: "echo", release: "v1", pool: "wild"),
            RouteConfiguration(namespace: "demo", pipeline: "*", pool: "exact"),
        ])
        #expect(table.resolve(PipelineRef(namespace: "demo", pipeline: "echo", release: "v1"))?.pool == "exact")
        #expect(table.resolve(PipelineRef(namespace: "else", pipeline: "echo", release: "v1"))?.pool == "wild")
        #expect(table.resolve(PipelineRef(namespace: "else", pipeline: "echo")) == nil)
    }

    @Test("the embedded default routes every demo pipeline and release to the demo pool, and nothing else")
    func embeddedDefault() {
        let table = RouteTable(configuration: .defaults)
        #expect(table.resolve(PipelineRef(namespace: "demo", pipeline: "tokens"))?.pool == "demo")
        #expect(table.resolve(PipelineRef(namespace: "demo", pipeline: "echo", release: "r7"))?.pool == "demo")
        #expect(table.resolve(PipelineRef(namespace: "acme", pipeline: "echo")) == nil)
    }

    @Test("an empty table resolves nothing")
    func emptyTable() {
        #expect(RouteTable(routes: []).resolve(PipelineRef(namespace: "a", pipeline: "b")) == nil)
    }
}
