@testable import GatewayServer
import Testing
import TriggerModel

@Suite("REST ListNamespacePipelineReleases: the path and its query")
struct PipelineReleasesRESTTests {
    @Test(
        "every namespace spelling's /releases is the list, GET and HEAD only",
        arguments: ["namespaces", "namespace", "users", "organizations"])
    func parses(kind: String) throws {
        let path = try RESTPath.parse("/v1beta/\(kind)/n/pipelines/p/releases?page_size=2")
        #expect(path == .pipelineReleases(PipelineRef(namespace: "n", pipeline: "p")))
        #expect(path?.allowedMethods == ["GET", "HEAD"])
        #expect(
            path?.operationID(method: "GET", target: "/v1beta/\(kind)/n/pipelines/p/releases")
                == "listNamespacePipelineReleases")
    }

    @Test(
        "near misses are not the list",
        arguments: [
            "/v1beta/namespaces/n/pipelines/p/release", "/v1beta/namespaces/n/pipelines//releases",
            "/v1beta/namespaces/n/pipelines/a%2Fb/releases", "/v1beta/namespaces/a%2Fb/pipelines/p/releases",
            "/v1beta/namespaces/n/pipeline/p/releases", "/v1beta/namespaces/n/pipelines/p/releases/",
        ])
    func nearMisses(target: String) throws {
        let path = try RESTPath.parse(target)
        if case .pipelineReleases = path { Issue.record("\(target) parsed as the releases list") }
    }

    private func query(_ text: String) throws -> PipelineReleaseQuery {
        try RESTRequestHead.releaseQuery(
            PipelineRef(namespace: "n", pipeline: "p"), RESTQuery(target: "/x" + (text.isEmpty ? "" : "?" + text)))
    }

    @Test("page_size and page_token in both spellings; view and show_deleted accepted")
    func parameters() throws {
        #expect(try query("").pageSize == 10)
        #expect(try query("page_size=0").pageSize == 10)
        #expect(try query("page_size=1").pageSize == 1)
        #expect(try query("pageSize=100").pageSize == 100)
        #expect(try query("page_size=101").pageSize == 100)
        #expect(try query("page_size=2147483647").pageSize == 100)
        let token = PipelineReleaseQuery.token(after: "v1")
        #expect(try query("page_token=\(token)").after == "v1")
        #expect(try query("pageToken=\(token)").after == "v1")
        #expect(try query("page_token=").after == nil)
        #expect(try query("view=VIEW_FULL&show_deleted=true").pageSize == 10)
        #expect(try query("showDeleted=false").pageSize == 10)
    }

    @Test(
        "refused: negative, non-numeric or out-of-int32 page_size, a bad token, a filter, unknown or repeated names",
        arguments: [
            ("page_size=-1", "page_size must not be negative"), ("page_size=ten", "invalid page_size \"ten\""),
            ("page_size=2147483648", "invalid page_size"), ("page_token=abc", "invalid page_token"),
            ("filter=id%3D%22v1%22", "filter expressions are not supported"),
            ("page=2", "unknown query parameter \"page\""), ("page_size=1&pageSize=2", "\"page_size\" is given more"),
            ("show_deleted=yes", "invalid show_deleted \"yes\""),
            ("show_deleted=true&showDeleted=true", "\"show_deleted\" is given more"),
        ])
    func refused(text: String, message: String) {
        #expect {
            try query(text)
        } throws: {
            ($0 as? GatewayError)?.code == .invalidArgument && "\($0)".contains(message)
        }
    }
}
