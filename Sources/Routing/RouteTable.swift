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
        package var index: Int
        package var route: RouteConfiguration
        /// The route as written in the configuration: `namespace/pipeline` or `namespace/pipeline@release`
        /// (e.g. "demo/*"). Made once here, so naming a request's route (logs, metric labels) allocates nothing.
        package var pattern: String

        package init(index: Int, route: RouteConfiguration) {
            self.index = index
            self.route = route
            self.pattern =
                route.release.map { "\(route.namespace)/\(route.pipeline)@\($0)" }
                ?? "\(route.namespace)/\(route.pipeline)"
        }
    }

    /// Routes by exact namespace, each list in config order, and the `*`-namespace routes apart.
    private let byNamespace: [String: [Entry]]
    private let anyNamespace: [Entry]
    package let entries: [Entry]

    package init(routes: [RouteConfiguration]) {
        let entries = routes.enumerated().map { Entry(index: $0.offset, route: $0.element) }
        self.entries = entries
        self.byNamespace = Dictionary(grouping: entries.filter { $0.route.namespace != RouteConfiguration.wildcard }) {
            $0.route.namespace
        }
        self.anyNamespace = entries.filter { $0.route.namespace == RouteConfiguration.wildcard }
    }

    package init(configuration: GatewayConfiguration) {
        self.init(routes: configuration.routes)
    }

    /// The winning route for `ref`, or nil when no route matches (the caller answers 404 NOT_FOUND).
    package func resolve(_ ref: PipelineRef) -> ResolvedRoute? {
        // An id with a "/" (a REST segment that carried %2F) names no pipeline: Instill ids are single path
        // segments, and a `*` route must not hand "ec/ho" to a backend as if it were one (issue 10, item 6).
        if ref.namespace.contains("/") || ref.pipeline.contains("/") || ref.release?.contains("/") == true {
            return nil
        }
        var best: (entry: Entry, score: Int)?
        // Exact-namespace routes always outrank `*` ones, so look at the latter only when needed.
        for candidates in [byNamespace[ref.namespace] ?? [], anyNamespace] {
            for entry in candidates {
                guard let score = Self.score(entry.route, ref), score > (best?.score ?? -1) else { continue }
                best = (entry, score)
            }
            if best != nil { break }
        }
        guard let best else { return nil }
        return ResolvedRoute(
            pool: best.entry.route.pool, routeIndex: best.entry.index, route: best.entry.route,
            pattern: best.entry.pattern)
    }

    /// Nil when the route does not match; otherwise a weight where each more significant rule dominates
    /// all less significant ones together.
    private static func score(_ route: RouteConfiguration, _ ref: PipelineRef) -> Int? {
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
    package struct ResolvedRoute: Sendable, Equatable {
        package var pool: String
        /// The index of the winning line in the config's `routes`.
        package var routeIndex: Int
        package var route: RouteConfiguration
        /// The winning route as configured (``Entry/pattern``): bounded by the config, never a raw id.
        package var pattern: String
    }
}
