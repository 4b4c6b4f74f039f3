package import GatewayConfig
package import TriggerModel

/// The frozen routing table: which pool serves a pipeline ref. Built once from the validated config and
/// then only read, so it is a plain `Sendable` value shared by every connection.
///
/// Specificity, most significant first: an exact namespace beats `*`, then an exact pipeline beats `*`,
/// then a route naming the ref's release beats one without a release. A route with a release matches only
/// refs with that release; a route without one matches every release (and refs with none). Among equally
/// specific matches the first listed wins; config validation refuses exact duplicates, so that only
/// happens for tables built directly.
package struct RouteTable: Sendable {
    /// One table entry, with the index of its `routes[]` line for logs and errors.
    package struct Entry: Sendable, Equatable {
        // Constants: `pattern`, `resolved` and `match` are made from them once.
        package let index: Int
        package let route: RouteConfiguration
        /// The route as written in the configuration: `namespace/pipeline` or `namespace/pipeline@release`
        /// (e.g. "demo/*"). Made once here, so naming a request's route (logs, metric labels) allocates nothing.
        package let pattern: String
        /// The name of the pool the route sends to.
        package var pool: String { route.pool }
        /// What ``RouteTable/resolve(_:)`` answers for this entry, made once.
        package let resolved: ResolvedRoute
        /// The route's fields a ref is matched on, apart: read for every trigger, where reading them out of
        /// ``route`` made an outlined copy of the whole route (~100 instructions per REST trigger with its retains
        /// and releases; bench/README.md "Forty-second session").
        let match: Match

        struct Match: Sendable, Equatable {
            let namespace: String
            let pipeline: String
            let release: String?
        }

        package init(index: Int, route: RouteConfiguration) {
            self.index = index
            self.route = route
            self.pattern =
                route.release.map { "\(route.namespace)/\(route.pipeline)@\($0)" }
                ?? "\(route.namespace)/\(route.pipeline)"
            self.resolved = ResolvedRoute(pool: route.pool, routeIndex: index, route: route, pattern: self.pattern)
            self.match = Match(namespace: route.namespace, pipeline: route.pipeline, release: route.release)
        }
    }

    /// The exact namespaces routes name, each once (in the order of their first route), and the routes of each
    /// (`byNamespace[i]` for `namespaces[i]`, in config order); the `*`-namespace routes apart.
    private let namespaces: [String]
    private let byNamespace: [[Entry]]
    private let anyNamespace: [Entry]
    /// `namespaces`' positions by name when there are more than ``maxScannedNamespaces``; nil otherwise, and the
    /// few are scanned (``group(of:)``). Issue 11: hashing the ref's namespace for the dictionary this was (SipHash,
    /// then the probe's comparison) cost ~300 of the ~775 instructions a trigger's route took, where a scan of a
    /// few names compares their lengths and, for the one of the same length, their bytes.
    private let namespaceIndex: [String: Int]?
    /// The most namespaces scanned rather than hashed: a scan's miss costs a length comparison each.
    package static let maxScannedNamespaces = 8
    package let entries: [Entry]

    package init(routes: [RouteConfiguration]) {
        let entries = routes.enumerated().map { Entry(index: $0.offset, route: $0.element) }
        self.entries = entries
        var namespaces: [String] = []
        var byNamespace: [[Entry]] = []
        var positions: [String: Int] = [:]
        for entry in entries where entry.route.namespace != RouteConfiguration.wildcard {
            if let position = positions[entry.route.namespace] {
                byNamespace[position].append(entry)
            } else {
                positions[entry.route.namespace] = namespaces.count
                namespaces.append(entry.route.namespace)
                byNamespace.append([entry])
            }
        }
        self.namespaces = namespaces
        self.byNamespace = byNamespace
        self.namespaceIndex = namespaces.count > Self.maxScannedNamespaces ? positions : nil
        self.anyNamespace = entries.filter { $0.route.namespace == RouteConfiguration.wildcard }
    }

    package init(configuration: GatewayConfiguration) {
        self.init(routes: configuration.routes)
    }

    /// The winning route for `ref`, or nil when no route matches (the caller answers 404 NOT_FOUND).
    package func resolve(_ ref: PipelineRef) -> ResolvedRoute? {
        // An id with a "/" (a REST segment that carried %2F) names no pipeline: Instill ids are single path
        // segments, and a `*` route must not hand "ec/ho" to a backend as if it were one (issue 10, item 6).
        if Self.hasSlash(ref.namespace) || Self.hasSlash(ref.pipeline) || ref.release.map(Self.hasSlash) == true {
            return nil
        }
        // Exact-namespace routes always outrank `*` ones, so look at the latter only when needed.
        if let group = group(of: ref.namespace), let best = Self.best(of: byNamespace[group], for: ref) {
            return best
        }
        return Self.best(of: anyNamespace, for: ref)
    }

    /// The position of `namespace` in ``namespaces``, nil when no route names it exactly: hashed in a table of
    /// many namespaces, scanned in one of a few (lengths first: two names of one length are rare).
    private func group(of namespace: String) -> Int? {
        if let namespaceIndex { return namespaceIndex[namespace] }
        let length = namespace.utf8.count
        for index in namespaces.indices where namespaces[index].utf8.count == length && namespaces[index] == namespace {
            return index
        }
        return nil
    }

    /// The most specific of `candidates` that matches `ref`, the first listed among equals. By index: a copy of
    /// each `Entry` looked at retained and released its strings (~10 each per call).
    private static func best(of candidates: [Entry], for ref: PipelineRef) -> ResolvedRoute? {
        var best: (index: Int, score: Int)?
        for index in candidates.indices {
            guard let score = Self.score(candidates[index].match, ref), score > (best?.score ?? -1) else { continue }
            best = (index, score)
        }
        return best.map { candidates[$0.index].resolved }
    }

    /// Whether `id` has a "/" byte; a plain byte scan (this runs for every trigger).
    private static func hasSlash(_ id: String) -> Bool {
        return id.withUTF8Bytes { $0.contains(UInt8(ascii: "/")) }
    }

    /// The releases routes name for `ref`'s pipeline (its own release ignored), sorted and unique: the release
    /// list Instill's `GetNamespacePipeline` shows. A route without a release matches every release but names
    /// none, so it adds nothing here.
    package func releases(of ref: PipelineRef) -> [String] {
        var releases = Set<String>()
        for entry in entries {
            guard let release = entry.route.release else { continue }
            let candidate = PipelineRef(namespace: ref.namespace, pipeline: ref.pipeline, release: release)
            if Self.score(entry.match, candidate) != nil { releases.insert(release) }
        }
        return releases.sorted()
    }

    /// The pipeline ids routes name in `namespace` (its own routes and `*`-namespace ones), sorted and unique: a
    /// `*` pipeline matches every id but names none, so it adds nothing here (the table cannot list what a
    /// wildcard serves).
    package func pipelines(in namespace: String) -> [String] {
        var names = Set<String>()
        for entry in entries where entry.route.pipeline != RouteConfiguration.wildcard {
            if entry.route.namespace == namespace || entry.route.namespace == RouteConfiguration.wildcard {
                names.insert(entry.route.pipeline)
            }
        }
        return names.sorted()
    }

    /// Nil when the route does not match; otherwise a weight where each more significant rule dominates
    /// all less significant ones together.
    private static func score(_ route: Entry.Match, _ ref: PipelineRef) -> Int? {
        var score = 0
        if route.namespace != RouteConfiguration.wildcard {
            guard route.namespace == ref.namespace else { return nil }
            score += 4
        }
        if route.pipeline != RouteConfiguration.wildcard {
            guard route.pipeline == ref.pipeline else { return nil }
            score += 2
        }
        if let release = route.release {
            guard release == ref.release else { return nil }
            score += 1
        }
        return score
    }

    /// Where a trigger goes: the pool's name, and which route said so.
    ///
    /// A class made once per table entry (``Entry/resolved``), not a struct made per call: a trigger's route
    /// travels by value through the dispatcher's `Target`, the request record and the call's closures, and
    /// each copy or destroy of the struct moved its ~200 bytes and retained or released each of its strings and
    /// optional webhook (~2.5 k instructions per gRPC call, ~5 k per REST call, mostly `memcpy` and reference
    /// counting; bench/README.md "Branch hotpath"). Immutable, so sharing it is safe; equal when its fields are.
    package final class ResolvedRoute: Sendable, Equatable {
        package let pool: String
        /// The index of the winning line in the config's `routes`.
        package let routeIndex: Int
        package let route: RouteConfiguration
        /// The winning route as configured (``Entry/pattern``): bounded by the config, never a raw id.
        package let pattern: String

        package init(pool: String, routeIndex: Int, route: RouteConfiguration, pattern: String) {
            self.pool = pool
            self.routeIndex = routeIndex
            self.route = route
            self.pattern = pattern
        }

        /// Whether the route names the pipeline exactly (not `*`): the configuration then says it exists, while
        /// behind a `*` only the runner knows.
        package var namesPipeline: Bool { route.pipeline != RouteConfiguration.wildcard }

        package static func == (lhs: ResolvedRoute, rhs: ResolvedRoute) -> Bool {
            lhs === rhs
                || (lhs.pool == rhs.pool && lhs.routeIndex == rhs.routeIndex && lhs.route == rhs.route
                    && lhs.pattern == rhs.pattern)
        }
    }
}
