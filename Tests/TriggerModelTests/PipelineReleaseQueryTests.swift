import Testing
import TriggerModel

@Suite("ListNamespacePipelineReleases paging")
struct PipelineReleaseQueryTests {
    private static let ref = PipelineRef(namespace: "n", pipeline: "p")

    private static func releases(_ ids: [String]) -> [PipelineResource] {
        ids.map {
            PipelineResource(
                name: "namespaces/n/pipelines/p/releases/\($0)", uid: "u-\($0)", id: $0, ownerName: "users/n",
                inputSchema: [:], outputSchema: [:])
        }
    }

    private func query(size: Int = 0, token: String = "", filter: String = "") throws -> PipelineReleaseQuery {
        try PipelineReleaseQuery(ref: Self.ref, pageSize: size, pageToken: token, filter: filter)
    }

    @Test(
        "page_size: 0 is 10, 1 and 100 as asked, 101 and Int32.max are 100 (Instill's cap)",
        arguments: [(0, 10), (1, 1), (99, 99), (100, 100), (101, 100), (Int(Int32.max), 100)])
    func pageSize(asked: Int, effective: Int) throws {
        #expect(try query(size: asked).pageSize == effective)
    }

    @Test("a negative page_size is INVALID_ARGUMENT naming it")
    func negativePageSize() {
        #expect {
            try query(size: -1)
        } throws: {
            let error = $0 as? GatewayError
            return error?.code == .invalidArgument && error?.message == "page_size must not be negative (it is -1)"
        }
    }

    @Test("a filter is refused, not ignored")
    func filter() {
        #expect {
            try query(filter: "id=\"v1\"")
        } throws: {
            ($0 as? GatewayError)?.code == .invalidArgument && "\($0)".contains("filter expressions are not supported")
        }
    }

    @Test("pages walk every release once: the size at the count ends the list, one fewer gives a token")
    func walk() throws {
        let all = Self.releases(["v1", "v10", "v2", "v3"])
        var page = try query(size: 4).page(of: all)
        #expect(page.releases.map(\.id) == ["v1", "v10", "v2", "v3"])
        #expect(page.nextPageToken == "" && page.totalSize == 4)

        page = try query(size: 3).page(of: all)
        #expect(page.releases.map(\.id) == ["v1", "v10", "v2"])
        #expect(page.nextPageToken == PipelineReleaseQuery.token(after: "v2"))
        page = try query(size: 3, token: page.nextPageToken).page(of: all)
        #expect(page.releases.map(\.id) == ["v3"] && page.nextPageToken == "" && page.totalSize == 4)

        // Bounded: a token that gave the same page again must fail here, not loop.
        var seen: [String] = []
        var token = ""
        for _ in 0..<10 {
            page = try query(size: 1, token: token).page(of: all)
            seen += page.releases.map(\.id)
            token = page.nextPageToken
            if token.isEmpty { break }
        }
        #expect(seen == ["v1", "v10", "v2", "v3"] && token.isEmpty)
    }

    @Test("no releases: an empty page, no token, total 0")
    func empty() throws {
        #expect(try query().page(of: []) == PipelineReleasePage(releases: [], nextPageToken: "", totalSize: 0))
    }

    @Test("keyset: a release removed or added before the token's id between pages neither repeats nor hides one")
    func changesBetweenPages() throws {
        let first = try query(size: 2).page(of: Self.releases(["a", "b", "c", "d"]))
        #expect(first.releases.map(\.id) == ["a", "b"])
        // b (the token's own id) is gone and a0 came before it: the next page is still c, d.
        let next = try query(size: 2, token: first.nextPageToken).page(of: Self.releases(["a", "a0", "c", "d"]))
        #expect(next.releases.map(\.id) == ["c", "d"] && next.nextPageToken == "")
    }

    @Test("a token round-trips any id, odd characters included")
    func tokenRoundTrip() throws {
        for id in ["v1", "é/ü 1", "🚀", String(repeating: "x", count: 300)] {
            let page = try query(size: 1, token: PipelineReleaseQuery.token(after: id)).page(
                of: Self.releases([id, id + "z"]))
            #expect(page.releases.map(\.id) == [id + "z"], "\(id)")
        }
    }

    @Test(
        "tokens no page gave are INVALID_ARGUMENT",
        arguments: ["x", "r", "v1", "r7", "r763", "rzz", "r7G", "R7631", "rff", "r 76"])
    func badTokens(token: String) {
        #expect("\(token)" != PipelineReleaseQuery.token(after: "v1"))
        #expect {
            try query(token: token)
        } throws: {
            ($0 as? GatewayError)?.code == .invalidArgument && "\($0)".contains("invalid page_token")
        }
    }

    @Test("uppercase hex is not a token this list writes: refused, so each id has exactly one token")
    func uppercaseToken() throws {
        #expect(PipelineReleaseQuery.token(after: "\u{ff}") == "rc3bf")
        #expect(throws: GatewayError.self) { try query(token: "rC3BF") }
        #expect(try query(token: "rc3bf").after == "\u{ff}")
    }
}

@Suite("ListNamespacePipelines paging")
struct PipelineListQueryTests {
    private static func pipelines(_ ids: [String]) -> [PipelineResource] {
        ids.map {
            PipelineResource(
                name: "namespaces/n/pipelines/\($0)", uid: "u-\($0)", id: $0, ownerName: "users/n",
                inputSchema: [:], outputSchema: [:])
        }
    }

    private func query(size: Int = 0, token: String = "", filter: String = "") throws -> PipelineListQuery {
        try PipelineListQuery(namespace: "n", pageSize: size, pageToken: token, filter: filter)
    }

    @Test(
        "page_size: 0 is 10, 100 as asked, 101 is 100; -1 INVALID_ARGUMENT",
        arguments: [(0, 10), (1, 1), (100, 100), (101, 100)])
    func pageSize(asked: Int, effective: Int) throws {
        #expect(try query(size: asked).pageSize == effective)
    }

    @Test("a negative page_size, a filter and an empty namespace are INVALID_ARGUMENT")
    func refusals() {
        for (make, message) in [
            ({ try self.query(size: -1) }, "page_size must not be negative (it is -1)"),
            ({ try self.query(filter: "id=\"a\"") }, "filter expressions are not supported on the pipelines list"),
            (
                { try PipelineListQuery(namespace: "", pageSize: 0, pageToken: "", filter: "") },
                "namespace_id is required"
            ),
        ] as [(() throws -> PipelineListQuery, String)] {
            #expect("\(message)") { try make() } throws: {
                ($0 as? GatewayError)?.code == .invalidArgument && "\($0)".contains(message)
            }
        }
    }

    @Test("pages walk every pipeline once, the last with no token; tokens round-trip odd ids")
    func walk() throws {
        let all = Self.pipelines(["a", "b", "c"])
        var page = try query(size: 2).page(of: all)
        #expect(page.pipelines.map(\.id) == ["a", "b"] && page.totalSize == 3)
        #expect(page.nextPageToken == PipelineListQuery.token(after: "b"))
        page = try query(size: 2, token: page.nextPageToken).page(of: all)
        #expect(page.pipelines.map(\.id) == ["c"] && page.nextPageToken == "" && page.totalSize == 3)
        // The size at the count: one page, no token.
        #expect(try query(size: 3).page(of: all).nextPageToken == "")
        #expect(try query().page(of: []) == PipelineListPage(pipelines: [], nextPageToken: "", totalSize: 0))
        for id in ["é/ü 1", "🚀"] {
            let next = try query(size: 1, token: PipelineListQuery.token(after: id)).page(
                of: Self.pipelines([id, id + "z"]))
            #expect(next.pipelines.map(\.id) == [id + "z"], "\(id)")
        }
    }

    @Test(
        "a token this list did not give is INVALID_ARGUMENT: a releases list's token for the same id included",
        arguments: ["", "p", "p7", "pzz", "P61", "r61", "x61"])
    func badTokens(token: String) throws {
        guard !token.isEmpty else {
            #expect(try query(token: "p61").after == "a")  // the one valid spelling of "a"
            #expect(PipelineListQuery.token(after: "a") == "p61" && PipelineReleaseQuery.token(after: "a") == "r61")
            return
        }
        #expect {
            try query(token: token)
        } throws: {
            ($0 as? GatewayError)?.code == .invalidArgument
                && "\($0)".contains("pass a next_page_token this pipelines list gave")
        }
    }
}
