import Testing
import TriggerModel

@testable import GatewayServer

/// The usual request target takes short cuts (issue 11): an origin-form target is not searched for a scheme,
/// and a path without `%` is not percent-decoded. Both must route exactly as the general code does.
@Suite("REST request targets: short cuts route as the general code")
struct RESTTargetFastPathTests {
    @Test(
        "origin-form targets come back as they are; absolute-form ones lose scheme and authority",
        arguments: [
            ("/v1beta/namespaces/demo/pipelines/echo/trigger", "/v1beta/namespaces/demo/pipelines/echo/trigger"),
            ("/a://b?c", "/a://b?c"),
            ("/", "/"),
            ("http://gw:8080/v1beta/operations?x=1", "/v1beta/operations?x=1"),
            ("http://gw:8080?x=1", "/?x=1"),
            ("http://gw", "/"),
            ("*", "*"),
        ])
    func originForm(target: String, expected: String) {
        #expect(HTTP1RequestRules.originForm(target) == expected)
    }

    @Test(
        "an absolute-form target routes as origin-form and its authority replaces Host (RFC 9112 §3.2.2)",
        arguments: [
            ("http://gw.example:8080/v1beta/operations?x=1", "/v1beta/operations?x=1", "gw.example:8080"),
            ("https://user@gw/a", "/a", "gw"),
            ("http://[::1]:80?q", "/?q", "[::1]:80"),
        ])
    func absoluteForm(target: String, path: String, authority: String) {
        let outcome = HTTP1RequestRules.check(minorVersion: 1, target: target, headers: [("host", "other")])
        #expect(outcome == .serve(target: path, authority: authority))
        #expect(
            HTTP1RequestRules.check(minorVersion: 1, target: path, headers: [("host", "other")])
                == .serve(target: path, authority: nil))
    }

    @Test("the fixed paths match whole under the length gate; the longest is the gate's length, one byte more is none")
    func fixedPaths() throws {
        // The table parse reads, and what each path must stay (a row lost or changed there fails here).
        let fixed: [(String, RESTPath)] = [
            ("/v1beta/__liveness", .liveness), ("/healthz", .liveness), ("/v1beta/__readiness", .readiness),
            ("/readyz", .readiness), ("/metrics", .metrics), ("/openapi.json", .openAPI),
            ("/v1beta/operations", .listOperations), ("/v1beta/schedules", .listSchedules),
        ]
        #expect(RESTPath.fixedPaths.map(\.path) == fixed.map(\.0))
        for (path, expected) in fixed {
            #expect(try RESTPath.parse(path) == expected, "\(path)")
            #expect(try RESTPath.parse(path + "?x=1") == expected, "\(path) with a query")
            #expect(try RESTPath.parse(path + "x") != expected, "\(path)x")
        }
        #expect(fixed.map(\.0.utf8.count).max() == RESTPath.fixedPathsMaxLength)
    }

    @Test("asterisk-form and authority-form targets: 501 saying what is not served")
    func asteriskAndAuthorityForms() throws {
        for (target, words) in [("*", "asterisk-form"), ("gw.example:443", "authority-form")] {
            let outcome = HTTP1RequestRules.check(minorVersion: 1, target: target, headers: [("host", "gw")])
            guard case .reject(let error, let close) = outcome else {
                Issue.record("\(target): \(outcome)")
                continue
            }
            #expect(error.code.httpStatus == 501)
            #expect(error.message.contains(words), "\(error.message)")
            #expect(!close)
        }
    }

    @Test(
        "the query's start found by the byte loop is the general search's, and the path before it the same",
        arguments: [
            "/v1beta/namespaces/demo/pipelines/echo/trigger", "/v1beta/operations?x=1&y=?", "?", "", "/a",
            "/é/ü?q=ç", "/" + String(repeating: "long-segment/", count: 20) + "?tail", "/no-query-but-ü",
        ])
    func queryStart(target: String) {
        #expect(RESTPath.queryStart(of: target) == target.utf8.firstIndex(of: UInt8(ascii: "?")))
        let general = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        #expect(RESTPath.pathPart(of: target) == general)
        #expect(HTTP1FrontendHandler.pathOnly(target) == String(general))
    }

    @Test(
        "a trigger's target routed on its bytes routes as the general code; anything else is left to it",
        arguments: [
            ("/v1beta/namespaces/demo/pipelines/echo/trigger", true),
            ("/v1beta/namespace/demo/pipelines/echo/trigger-stream?x=%zz", true),
            ("/v1beta/users/u/pipelines/p/trigger-async?a=/b?c", true),
            ("/v1beta/organizations/o/pipelines/p/triggerAsync", true),
            ("/v1beta/namespaces/demo/pipelines/echo/releases/v1/trigger", true),
            ("/v1beta/users/u/pipelines/p/releases/r/triggerAsync?", true),
            ("/v1beta/namespaces/demo/pipelines/echo/releases", false),  // ListNamespacePipelineReleases
            ("/v1beta/namespaces/demo/pipelines/echo", false),  // GetNamespacePipeline
            ("/v1beta/namespaces/demo/pipelines/echo/releases/v1", false),
            ("/v1beta/namespaces/demo/pipelines/echo/releases/v1/releases", false),
            ("/v1beta/namespaces/demo/pipelines/echo/trigger/", false),
            ("/v1beta/namespaces/demo/pipelines/echo/triggers", false),
            ("/v1beta/namespaces/demo/pipelines/echo/Trigger", false),
            ("/v1beta/namespaces/demo/pipeline/echo/trigger", false),
            ("/v1beta/namespaces/demo/pipelines/echo/release/v1/trigger", false),
            ("/v1beta/Namespaces/demo/pipelines/echo/trigger", false),
            ("/v1beta/groups/demo/pipelines/echo/trigger", false),
            ("/v1/namespaces/demo/pipelines/echo/trigger", false),
            ("/v1beta/namespaces//pipelines/echo/trigger", false),
            ("/v1beta/namespaces/demo/pipelines//trigger", false),
            ("/v1beta/namespaces/demo/pipelines/echo/releases//trigger", false),
            ("//namespaces/demo/pipelines/echo/trigger", false),
            ("v1beta/namespaces/demo/pipelines/echo/trigger", false),
            ("/v1beta/namespaces/d%65mo/pipelines/echo/trigger", false),  // decoded by the general code
            ("/v1beta/namespaces/demo/pipelines/echo%/trigger", false),  // malformed: the general code throws
            ("/v1beta/namespaces/démo/pipelines/echo/trigger", false),
            ("/v1beta/namespaces/demo/pipelines/echo/trigger?q=é", false),
            ("/v1beta/namespaces/demo/pipelines/echo/trigger?\u{301}", false),  // "?" + a combining mark
            ("/v1beta/namespaces/demo/pipelines/echo/releases/v1/trigger/x", false),
            ("/v1beta/a/b/c/d/e/f/g/h/i", false),
            ("/api/v1/pipelines/a/b/c", false), ("/api/v0/runPipeline", false), ("/v1beta/operations/x", false),
            ("/healthz", false), ("/", false), ("", false), ("?", false),
        ])
    func triggerOnBytes(target: String, fast: Bool) {
        func routed(_ parse: (String) throws(GatewayError) -> RESTPath?) -> Result<RESTPath?, GatewayError> {
            do throws(GatewayError) { return .success(try parse(target)) } catch { return .failure(error) }
        }
        let general = routed(RESTPath.parseGenerally)
        #expect((RESTPath.triggerOnBytes(target) != nil) == fast, "\(target): \(general)")
        if let onBytes = RESTPath.triggerOnBytes(target) {
            #expect(general == .success(onBytes), "\(target)")
        }
        #expect(routed(RESTPath.parse) == general, "\(target)")
    }

    /// Review 17, finding 10: abacusai given `server="http://host/"` asks for `//api/v0/getApiEndpoint`.
    @Test(
        "runs of slashes route as one (nginx's merge_slashes); an escaped slash stays data",
        arguments: [
            ("//api/v0/getApiEndpoint", "/api/v0/getApiEndpoint"),
            ("/api//v0///runPipeline?x=1", "/api/v0/runPipeline"),
            ("//v1beta//namespaces/demo/pipelines/echo//trigger", "/v1beta/namespaces/demo/pipelines/echo/trigger"),
            ("///api/v1/pipelines/p/run", "/api/v1/pipelines/p/run"),
            ("//healthz", "/healthz"),
        ])
    func mergedSlashes(target: String, plain: String) throws {
        let merged = try RESTPath.parse(target)
        #expect(merged != nil, "\(target)")
        #expect(merged == (try RESTPath.parse(plain)), "\(target)")
        #expect(RESTPath.mergingSlashes("/a%2F%2Fb//c"[...]) == "/a%2F%2Fb/c")
        #expect(RESTPath.mergingSlashes("/é//ü"[...]) == "/é/ü")
        #expect(RESTPath.mergingSlashes("/a/b"[...]) == "/a/b")
    }

    @Test("a path with escapes routes as the same path written plainly")
    func escapedAndPlain() throws {
        let plain = try RESTPath.parse("/v1beta/namespaces/demo/pipelines/echo/trigger")
        let escaped = try RESTPath.parse("/v1beta/namespaces/d%65mo/pipelines/ec%68o/trigger")
        #expect(plain != nil)
        #expect(plain == escaped)
        #expect(throws: (any Error).self) { try RESTPath.parse("/v1beta/namespaces/demo/pipelines/echo%/trigger") }
    }

    @Test("a Host value: exactly RFC 3986's reg-name, IP literal and port bytes are valid, alone and in a value")
    func hostCharacters() {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%!$&'()*+,;=:[]".utf8)
        for c in UInt8.min...UInt8.max {
            let alone = String(decoding: [c], as: UTF8.self)
            #expect(HTTP1RequestRules.isValidHost(alone) == allowed.contains(c), "byte \(c)")
            let inside = HTTP1RequestRules.isValidHost("127.0.0.1" + alone + ":80")
            #expect(inside == allowed.contains(c), "byte \(c) inside")
        }
        #expect(HTTP1RequestRules.isValidHost(""))
        #expect(HTTP1RequestRules.isValidHost("[::1]:8080"))
        #expect(!HTTP1RequestRules.isValidHost("h\u{E9}te"))
    }
}
