import AbacusSurface
import TriggerModel

/// The REST routes of API.md §2, parsed from a request target without allocating per-character.
///
/// Parsing is separate from the handler so HTTP/1.1 and REST-over-h2c share one table: a path either
/// names one of these endpoints (and the methods it allows), or it is unknown (404).
enum RESTPath: Equatable {
    enum TriggerKind: Equatable {
        /// `/trigger`: sync, or SSE when the client accepts `text/event-stream`.
        case trigger
        /// `/trigger-stream`.
        case stream
        /// `/trigger-async` or `/triggerAsync`.
        case async
    }

    case trigger(PipelineRef, TriggerKind)
    /// `GET /v1beta/{ns-kind}/{ns}/pipelines/{pipeline}[/releases/{release}]`: Instill's
    /// `GetNamespacePipeline[Release]` (RESTExchange+Pipelines).
    case pipeline(PipelineRef)
    /// `GET /v1beta/{ns-kind}/{ns}/pipelines/{pipeline}/releases[?page_size=&page_token=]`: Instill's
    /// `ListNamespacePipelineReleases` (RESTExchange+Pipelines).
    case pipelineReleases(PipelineRef)
    /// `GET /v1beta/{ns-kind}/{ns}/pipelines[?page_size=&page_token=]`: Instill's `ListNamespacePipelines`
    /// (RESTExchange+Pipelines).
    case pipelines(namespace: String)
    /// `GET /v1beta/{ns-kind}/{ns}/pipelines/{pipeline}/runs[?page=&page_size=]`: Instill's `ListPipelineRuns`
    /// (RESTExchange+PipelineRuns).
    case pipelineRuns(PipelineRef)
    case operation(id: String)
    case cancelOperation(id: String)
    case listOperations
    /// `GET /v1beta/schedules`.
    case listSchedules
    /// `POST /v1beta/schedules/{name}:pause|:resume|:trigger`.
    case scheduleAction(name: String, ScheduleAction)
    case liveness
    case readiness
    case metrics
    /// `GET /openapi.json`: the OpenAPI document of these routes.
    case openAPI
    /// `/api/v0/<action>`: the Abacus.AI surface (API.md §4b); the action is matched by `AbacusAPI`, which
    /// answers an unknown one in its own envelope.
    case abacus(action: String)
    /// The Craft AI surface (`/api/v1/...`, `/endpoints/...`).
    case craft(CraftRoute)

    /// The methods this endpoint answers; anything else is 405 with an `Allow` header listing them
    /// (RFC 9110 §15.5.6). HEAD is served wherever GET is (RFC 9110 §9.3.2: "the server SHOULD send the
    /// same header fields in response to a HEAD request as it would have sent if the request method had
    /// been GET").
    var allowedMethods: [String] {
        switch self {
        // runPipeline stores a run, so the safe methods must not reach it (`AbacusAPI.Action.isSafe`).
        case .abacus(let action): action == "runPipeline" ? ["POST"] : ["GET", "HEAD", "POST"]
        case .craft(let route): route.allowedMethods
        default: fixedMethods == .post ? ["POST"] : ["GET", "HEAD"]
        }
    }

    /// Whether ``allowedMethods`` has `method`, without making the array (issue 11: an array and its release per
    /// request).
    func allows(_ method: String) -> Bool {
        switch fixedMethods {
        case .post?: method == "POST"
        case .read?: method == "GET" || method == "HEAD"
        case nil: allowedMethods.contains(method)
        }
    }

    /// The methods of the gateway's own routes, which one of two sets decides (one list of the routes for both
    /// ``allowedMethods`` and ``allows(_:)``): POST for those that act, GET and HEAD for those that read. Nil for
    /// a surface's routes, whose methods depend on the action.
    private enum FixedMethods { case post, read }

    private var fixedMethods: FixedMethods? {
        switch self {
        case .trigger, .cancelOperation, .scheduleAction: .post
        case .operation, .listOperations, .listSchedules, .liveness, .readiness, .metrics, .openAPI, .pipeline,
            .pipelineReleases, .pipelines, .pipelineRuns:
            .read
        case .abacus, .craft: nil
        }
    }

    /// True for an `/api/v0/` method this gateway does not serve: every HTTP method gets the Abacus surface's
    /// 404 "does not serve" then, since a 405 listing methods would say the path exists (review 8: the
    /// client's `deletePipeline` is a DELETE).
    var answersEveryMethod: Bool {
        guard case .abacus(let action) = self else { return false }
        return AbacusAPI.Action(rawValue: action) == nil
    }

    private static let abacusPrefix = "/api/v0/"

    /// `{ns-kind}`: every spelling Instill's clients use for a namespace segment.
    /// The collection kinds a pipeline's namespace is named under (byte comparisons, not a `Set`: no lazily
    /// initialised global nor hashing per call).
    private static func isNamespaceKind(_ kind: UnsafeBufferPointer<UInt8>) -> Bool {
        equal(kind, "namespaces") || equal(kind, "namespace") || equal(kind, "users") || equal(kind, "organizations")
    }

    private static func isNamespaceKind(_ kind: Substring) -> Bool {
        return kind.withUTF8Bytes { isNamespaceKind($0) }
    }

    /// The paths ``parse(_:)`` matches whole, and what each is. One table, so the length gate below
    /// (``fixedPathsMaxLength``) follows any path added here (review 16 F10: a hand-kept 19 would have made a longer
    /// one a 404).
    static let fixedPaths: [(path: String, endpoint: RESTPath)] = [
        ("/v1beta/__liveness", .liveness), ("/healthz", .liveness),
        ("/v1beta/__readiness", .readiness), ("/readyz", .readiness),
        ("/metrics", .metrics), ("/openapi.json", .openAPI),
        ("/v1beta/operations", .listOperations), ("/v1beta/schedules", .listSchedules),
    ]

    /// The byte length of the longest of ``fixedPaths``.
    static let fixedPathsMaxLength = fixedPaths.map(\.path.utf8.count).max() ?? 0

    /// Parses a request target (`/v1beta/...?query`); nil when no endpoint has this path.
    ///
    /// The path is split on `/` first and each segment is percent-decoded after (RFC 3986 §2.2 and §3.3:
    /// `/` is the delimiter, while an encoded `%2F` is data inside its segment). So `ec%68o` names the
    /// pipeline `echo`, and `a%2Fb` names a pipeline or operation id `a/b`, which no route or store has;
    /// it never becomes two segments. The `:cancel` suffix of an operation path is matched before decoding,
    /// so an id may hold an encoded `%3Acancel` without meaning the verb.
    ///
    /// - Throws: `GatewayError(.invalidArgument)` when a segment holds a `%` not followed by two hex digits
    ///   (RFC 3986 §2.1: such a target is not a URI).
    static func parse(_ target: String) throws(GatewayError) -> RESTPath? {
        // Returned as it came, not bound and wrapped again: a bound copy cost an outlined copy and destroy of the
        // optional, through the runtime's generic value witnesses (~130 instructions each; issue 11).
        let trigger = triggerOnBytes(target)
        if case .some = trigger { return trigger }
        return try parseGenerally(target)
    }

    /// ``parse(_:)`` without the trigger short cut (``triggerOnBytes(_:)``): the definition it must agree with.
    static func parseGenerally(_ target: String) throws(GatewayError) -> RESTPath? {
        let path = mergingSlashes(pathPart(of: target))
        // A trigger's path is longer than every fixed one: it skips their eight string comparisons (~700
        // instructions per REST call).
        if path.utf8.count <= fixedPathsMaxLength {
            for fixed in fixedPaths where fixed.path == path { return fixed.endpoint }
        }
        if path.hasPrefix(abacusPrefix) {
            let action = path.dropFirst(abacusPrefix.count)
            return action.isEmpty || action.contains("/") ? nil : .abacus(action: String(action))
        }
        let raw = segments(of: path)
        guard hasPercent(path) else {
            // Nothing to decode (the usual target): the segments as they are, no `String` made per segment nor
            // an array of them (issue 11: 4 allocations and ~9 000 instructions per REST call).
            return route(raw, raw: raw)
        }
        var parts: [Substring] = []
        parts.reserveCapacity(raw.count)
        for segment in raw {
            guard let decoded = PercentDecoding.decodeStrictly(segment.utf8) else {
                throw GatewayError(.invalidArgument, "malformed percent-escape in the path \"\(path)\"")
            }
            parts.append(decoded[...])
        }
        return route(parts, raw: raw)
    }

    /// `path` with each run of `/` made one, as nginx's `merge_slashes` (its default) does: no path of this API
    /// has an empty segment, and a client that joins a base URL ending in `/` to `/api/v0/...` sends `//api/v0/...`
    /// (abacusai with `server="http://host/"`: its construction retried for 15 s, then failed on our 404; review 17,
    /// finding 10). An escaped slash (`%2F`) is data, not a delimiter, and stays. The path as it is when it has no
    /// `//` (one scan of its bytes).
    static func mergingSlashes(_ path: Substring) -> Substring {
        var previous: UInt8 = 0
        var doubled = false
        for byte in path.utf8 {
            if byte == UInt8(ascii: "/"), previous == byte {
                doubled = true
                break
            }
            previous = byte
        }
        guard doubled else { return path }
        var merged = String()
        merged.reserveCapacity(path.utf8.count)
        previous = 0
        for character in path.unicodeScalars {
            if character == "/", previous == UInt8(ascii: "/") { continue }
            merged.unicodeScalars.append(character)
            previous = character.isASCII ? UInt8(character.value) : 0
        }
        return merged[...]
    }

    /// The usual target, a trigger (`/v1beta/{ns-kind}/{ns}/pipelines/{pipeline}[/releases/{release}]/{verb}`,
    /// any query after), routed in one pass over its UTF-8: nil for anything else, which ``parse(_:)`` then
    /// routes the general way (``route(_:raw:)`` stays the definition of every route; this is its two trigger
    /// shapes).
    ///
    /// Taken only for an all-ASCII target whose path has no `%` (nothing to decode, and a byte split is the
    /// `Character` split) and 7 or 9 segments, the second `v1beta`: such a path is longer than every fixed path
    /// and is neither Abacus's nor Craft's, so the general code reaches the same two `route` cases. Why: the
    /// general code's `Substring`s walked a `Substring.UTF8View` index per byte and compared each segment through
    /// `_stringCompareInternal`; with the query search and the ASCII check, ~5 k instructions per REST call
    /// (bench/README.md, "Branch hotpath3"). `RESTTargetFastPathTests.triggerOnBytes` checks both agree.
    static func triggerOnBytes(_ target: String) -> RESTPath? {
        return target.withUTF8Bytes { bytes in
            // The offsets of the path's slashes: 6 or 8 in a trigger's path.
            withUnsafeTemporaryAllocation(of: Int.self, capacity: 8) { slashes in
                triggerOnBytes(bytes, slashes: slashes)
            }
        }
    }

    private static func triggerOnBytes(
        _ bytes: UnsafeBufferPointer<UInt8>, slashes: UnsafeMutableBufferPointer<Int>
    ) -> RESTPath? {
        guard bytes.first == UInt8(ascii: "/") else { return nil }
        var count = 0
        var end = bytes.count
        var i = 0
        path: while i < bytes.count {
            switch bytes[i] {
            case UInt8(ascii: "?"):
                end = i
                break path
            case UInt8(ascii: "/"):
                guard count < slashes.count else { return nil }
                slashes[count] = i
                count += 1
            case UInt8(ascii: "%"), 0x80...:
                return nil
            default:
                break
            }
            i += 1
        }
        // The query, if any, must be ASCII too: otherwise `pathPart(of:)` splits by `Character`, where a "?"
        // followed by a combining mark is not a "?".
        while i < bytes.count {
            guard bytes[i] < 0x80 else { return nil }
            i += 1
        }
        guard count == 6 || count == 8 else { return nil }
        // Segment k (1 through count) of the path: from after slash k - 1 to slash k or the path's end.
        func segment(_ k: Int) -> UnsafeBufferPointer<UInt8> {
            UnsafeBufferPointer(rebasing: bytes[(slashes[k - 1] + 1)..<(k < count ? slashes[k] : end)])
        }
        func string(_ k: Int) -> String { String(decoding: segment(k), as: UTF8.self) }
        for k in 1...count where segment(k).isEmpty { return nil }
        guard equal(segment(1), "v1beta"), isNamespaceKind(segment(2)), equal(segment(4), "pipelines") else {
            return nil
        }
        if count == 6 {
            guard let kind = triggerKind(segment(6)) else { return nil }
            return .trigger(PipelineRef(namespace: string(3), pipeline: string(5)), kind)
        }
        guard equal(segment(6), "releases"), let kind = triggerKind(segment(8)) else { return nil }
        return .trigger(PipelineRef(namespace: string(3), pipeline: string(5), release: string(7)), kind)
    }

    /// Whether `bytes` are `text`'s UTF-8.
    private static func equal(_ bytes: UnsafeBufferPointer<UInt8>, _ text: StaticString) -> Bool {
        guard bytes.count == text.utf8CodeUnitCount else { return false }
        let expected = text.utf8Start
        for k in 0..<bytes.count where bytes[k] != expected[k] { return false }
        return true
    }

    /// The route of a path's segments (`parts`, percent-decoded; `raw`, as sent), parts[0] being "" (the
    /// leading slash).
    private static func route(_ parts: [Substring], raw: [Substring]) -> RESTPath? {
        if parts.count >= 2, CraftRoute.mayMatch(firstSegment: parts[1]) {
            return CraftRoute(segments: parts.map(String.init)).map(RESTPath.craft)
        }
        guard parts.count >= 3, parts[0].isEmpty, parts[1] == "v1beta" else { return nil }
        if parts[2] == "operations", parts.count == 4, !parts[3].isEmpty {
            let last = raw[3]
            if last.hasSuffix(":cancel") {
                let id = PercentDecoding.decodeStrictly(last.dropLast(":cancel".count).utf8) ?? ""
                return id.isEmpty ? nil : .cancelOperation(id: id)
            }
            return .operation(id: String(parts[3]))
        }
        if parts[2] == "schedules" {
            return parts.count == 4 ? scheduleAction(raw[3]) : nil
        }
        guard isNamespaceKind(parts[2]) else { return nil }
        // /v1beta/{kind}/{ns}/pipelines
        // /v1beta/{kind}/{ns}/pipelines/{pipeline}
        // /v1beta/{kind}/{ns}/pipelines/{pipeline}/releases/{release}
        // /v1beta/{kind}/{ns}/pipelines/{pipeline}/releases
        // /v1beta/{kind}/{ns}/pipelines/{pipeline}/runs
        // /v1beta/{kind}/{ns}/pipelines/{pipeline}/{verb}
        // /v1beta/{kind}/{ns}/pipelines/{pipeline}/releases/{release}/{verb}
        let components = parts[3...]
        func component(_ k: Int) -> Substring { components[components.startIndex + k] }
        guard components.allSatisfy({ !$0.isEmpty }) else { return nil }
        switch components.count {
        case 2 where component(1) == "pipelines":
            return component(0).contains("/") ? nil : .pipelines(namespace: String(component(0)))
        // A metadata path whose id carried an encoded "/" names no resource (Instill ids are single segments):
        // 404, not the 405 its shape would otherwise get for a POST.
        case 3 where components.contains(where: { $0.contains("/") }),
            5 where components.contains(where: { $0.contains("/") }):
            return nil
        case 3 where component(1) == "pipelines":
            return .pipeline(PipelineRef(namespace: String(component(0)), pipeline: String(component(2))))
        case 5 where component(1) == "pipelines" && component(3) == "releases":
            return .pipeline(
                PipelineRef(
                    namespace: String(component(0)), pipeline: String(component(2)), release: String(component(4))))
        case 4 where component(1) == "pipelines" && component(3) == "releases":
            if components.contains(where: { $0.contains("/") }) { return nil }
            return .pipelineReleases(PipelineRef(namespace: String(component(0)), pipeline: String(component(2))))
        case 4 where component(1) == "pipelines" && component(3) == "runs":
            if components.contains(where: { $0.contains("/") }) { return nil }
            return .pipelineRuns(PipelineRef(namespace: String(component(0)), pipeline: String(component(2))))
        case 4 where component(1) == "pipelines":
            guard let kind = triggerKind(component(3)) else { return nil }
            return .trigger(PipelineRef(namespace: String(component(0)), pipeline: String(component(2))), kind)
        case 6 where component(1) == "pipelines" && component(3) == "releases":
            guard let kind = triggerKind(component(5)) else { return nil }
            let ref = PipelineRef(
                namespace: String(component(0)),
                pipeline: String(component(2)),
                release: String(component(4))
            )
            return .trigger(ref, kind)
        default:
            return nil
        }
    }

    /// A request target's path: everything before its first "?".
    ///
    /// An all-ASCII target (what HTTP puts on the wire) is cut at the byte; anything else keeps the
    /// `Character`-wise split, so its grapheme semantics do not change. Splitting by `Character` cost ~10 000
    /// instructions per request (bench/README.md, "Instructions per call").
    static func pathPart(of target: String) -> Substring {
        guard isASCII(target) else {
            return target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        }
        guard let query = queryStart(of: target) else { return target[...] }
        return target[..<query]
    }

    /// The index of `target`'s first `?` (where its query begins), found by a plain loop over its contiguous
    /// UTF-8: the generic `utf8.firstIndex(of:)` cost ~1 400 instructions on a 50-byte target (issue 11).
    static func queryStart(of target: String) -> String.Index? {
        guard let offset = target.withUTF8Bytes({ $0.firstIndex(of: UInt8(ascii: "?")) }) else { return nil }
        return target.utf8.index(target.utf8.startIndex, offsetBy: offset)
    }

    /// `path.split(separator: "/", omittingEmptySubsequences: false)`, on bytes when `path` is all ASCII (where
    /// a byte and a `Character` split the same; see ``pathPart(of:)``).
    static func segments(of path: Substring) -> [Substring] {
        guard isASCII(path) else { return path.split(separator: "/", omittingEmptySubsequences: false) }
        var segments: [Substring] = []
        segments.reserveCapacity(8)
        var start = path.startIndex
        var index = path.utf8.startIndex
        while index != path.utf8.endIndex {
            if path.utf8[index] == UInt8(ascii: "/") {
                segments.append(path[start..<index])
                start = path.utf8.index(after: index)
            }
            index = path.utf8.index(after: index)
        }
        segments.append(path[start...])
        return segments
    }

    /// Whether `path` holds a `%` (a byte loop: a path without one needs no decoding).
    private static func hasPercent(_ path: Substring) -> Bool {
        path.utf8.withContiguousStorageIfAvailable { $0.contains(UInt8(ascii: "%")) }
            ?? path.utf8.contains(UInt8(ascii: "%"))
    }

    private static func isASCII<Text: StringProtocol>(_ text: Text) -> Bool {
        text.utf8.withContiguousStorageIfAvailable { $0.allSatisfy { $0 < 0x80 } }
            ?? text.utf8.allSatisfy { $0 < 0x80 }
    }

    private static func triggerKind(_ verb: UnsafeBufferPointer<UInt8>) -> TriggerKind? {
        if equal(verb, "trigger") { return .trigger }
        if equal(verb, "trigger-stream") { return .stream }
        if equal(verb, "trigger-async") || equal(verb, "triggerAsync") { return .async }
        return nil
    }

    private static func triggerKind(_ verb: Substring) -> TriggerKind? {
        return verb.withUTF8Bytes { triggerKind($0) }
    }
}
