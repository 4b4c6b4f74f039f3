/// A request for one page of a pipeline's releases: Instill's `ListNamespacePipelineReleases`
/// (`pipeline.pipeline.v1beta`, `vdp.pipeline.v1beta`), `ListPipelineReleases` (`pipeline.v1beta`) and
/// `GET /v1beta/{ns-kind}/{ns}/pipelines/{id}/releases`. The releases are the ones routes name
/// (`InstillPipelineMetadata`), ordered by id, so a page token is the id of the last release given (keyset
/// paging): a release added or removed between pages neither repeats nor hides another.
///
/// Page sizes follow Instill's `page_size` (pipeline.proto: "If this parameter is unspecified, at most 10
/// pipelines will be returned. The cap value for this parameter is 100 (i.e. any value above that will be
/// coerced to 100)"); a negative one is INVALID_ARGUMENT (AIP-158). `filter` (AIP-160) is not supported: a
/// non-empty one is INVALID_ARGUMENT rather than ignored, which would answer an unfiltered list as if filtered.
/// `view` and `show_deleted` change nothing (a release carries no recipe here, and none is ever deleted).
package struct PipelineReleaseQuery: Sendable, Equatable {
    package static let defaultPageSize = 10
    package static let maximumPageSize = 100

    package var ref: PipelineRef
    /// The releases a page holds: from 1 to ``maximumPageSize``.
    package var pageSize: Int
    /// The id the page starts after (from the page token); nil for the first page.
    package var after: String?

    /// - Parameters:
    ///   - pageSize: as sent; 0 (or absent) is ``defaultPageSize``, above ``maximumPageSize`` is the maximum.
    ///   - pageToken: a previous page's `next_page_token`, or "" for the first page.
    ///   - filter: must be "".
    /// - Throws: `GatewayError(.invalidArgument)` for a negative page size, a page token no page gave, or a filter.
    package init(ref: PipelineRef, pageSize: Int, pageToken: String, filter: String) throws(GatewayError) {
        self.ref = ref
        (self.pageSize, after) = try KeysetPage.request(
            pageSize: pageSize, pageToken: pageToken, filter: filter, kind: Self.tokenKind, list: "releases")
    }

    /// The page of `releases` (sorted by id, as `RouteTable.releases(of:)` gives them) this query asks for:
    /// those after the token's id, at most ``pageSize``, with the token of the next page ("" when this is the
    /// last) and the number of releases in all.
    package func page(of releases: [PipelineResource]) -> PipelineReleasePage {
        let page = KeysetPage.page(of: releases, after: after, pageSize: pageSize, kind: Self.tokenKind)
        return PipelineReleasePage(releases: page.items, nextPageToken: page.nextPageToken, totalSize: page.totalSize)
    }

    /// The first character of this list's page tokens (``KeysetPage``).
    static let tokenKind: Character = "r"

    /// The token of the page after release `id`.
    package static func token(after id: String) -> String {
        KeysetPage.token(after: id, kind: tokenKind)
    }
}

/// A request for one page of a namespace's pipelines: Instill's `ListNamespacePipelines`
/// (`pipeline.pipeline.v1beta`) and `GET /v1beta/namespaces/{namespace}/pipelines`. The pipelines are the ones
/// routes name in the namespace (`TriggerDispatcher.servedPipelines(in:)`, what Craft AI's `list_pipelines`
/// lists), ordered by id, paged as ``PipelineReleaseQuery`` pages releases (keyset, the same page sizes, no
/// filter), with tokens of their own: a releases list's token is not one of this list's.
///
/// `view`, `show_deleted`, `visibility` and `order_by` change nothing: a listed pipeline carries no recipe, none
/// is deleted, none has sharing settings, and the order is by id (which is Instill's default order too).
package struct PipelineListQuery: Sendable, Equatable {
    package var namespace: String
    /// From 1 to ``PipelineReleaseQuery/maximumPageSize``.
    package var pageSize: Int
    /// The id the page starts after (from the page token); nil for the first page.
    package var after: String?

    /// - Parameters: as ``PipelineReleaseQuery/init(ref:pageSize:pageToken:filter:)``.
    /// - Throws: `GatewayError(.invalidArgument)` for an empty namespace, a negative page size, a page token this
    ///   list did not give, or a filter.
    package init(namespace: String, pageSize: Int, pageToken: String, filter: String) throws(GatewayError) {
        guard !namespace.isEmpty else { throw GatewayError(.invalidArgument, "namespace_id is required") }
        self.namespace = namespace
        (self.pageSize, after) = try KeysetPage.request(
            pageSize: pageSize, pageToken: pageToken, filter: filter, kind: Self.tokenKind, list: "pipelines")
    }

    /// The page of `pipelines` (sorted by id) this query asks for, as ``PipelineReleaseQuery/page(of:)``.
    package func page(of pipelines: [PipelineResource]) -> PipelineListPage {
        let page = KeysetPage.page(of: pipelines, after: after, pageSize: pageSize, kind: Self.tokenKind)
        return PipelineListPage(pipelines: page.items, nextPageToken: page.nextPageToken, totalSize: page.totalSize)
    }

    static let tokenKind: Character = "p"

    /// The token of the page after pipeline `id`.
    package static func token(after id: String) -> String {
        KeysetPage.token(after: id, kind: tokenKind)
    }
}

/// One page of a namespace's pipelines (``PipelineListQuery/page(of:)``).
package struct PipelineListPage: Sendable, Equatable {
    package var pipelines: [PipelineResource]
    /// "" on the last page.
    package var nextPageToken: String
    /// The namespace's pipelines in all pages.
    package var totalSize: Int

    package init(pipelines: [PipelineResource], nextPageToken: String, totalSize: Int) {
        self.pipelines = pipelines
        self.nextPageToken = nextPageToken
        self.totalSize = totalSize
    }
}

/// Keyset paging of a list of resources ordered by id (the releases and pipelines lists): a page token is a
/// kind letter and the UTF-8 of the last id given in lowercase hex, opaque to clients, any id (however odd)
/// fits, and a resource added or removed between pages neither repeats nor hides another.
enum KeysetPage {
    /// The page size and start of a request. Page sizes follow Instill's `page_size` (pipeline.proto: unset or
    /// 0 is ``PipelineReleaseQuery/defaultPageSize``, above ``PipelineReleaseQuery/maximumPageSize`` is the
    /// maximum); a negative one is INVALID_ARGUMENT (AIP-158), as are a token that is not `kind`'s and a
    /// non-empty `filter` (AIP-160 is not supported: ignoring it would answer an unfiltered list as if
    /// filtered). `list` names the list in the errors.
    static func request(
        pageSize: Int, pageToken: String, filter: String, kind: Character, list: String
    ) throws(GatewayError) -> (pageSize: Int, after: String?) {
        guard pageSize >= 0 else {
            throw GatewayError(.invalidArgument, "page_size must not be negative (it is \(pageSize))")
        }
        guard filter.isEmpty else {
            throw GatewayError(
                .invalidArgument, "filter expressions are not supported on the \(list) list (filter \"\(filter)\")")
        }
        let size =
            pageSize == 0
            ? PipelineReleaseQuery.defaultPageSize : min(pageSize, PipelineReleaseQuery.maximumPageSize)
        return (size, pageToken.isEmpty ? nil : try id(inToken: pageToken, kind: kind, list: list))
    }

    /// The resources after `after` (all without it), at most `pageSize`, the next page's token ("" when none
    /// follow) and how many there are in all. `resources` must be sorted by id.
    static func page(of resources: [PipelineResource], after: String?, pageSize: Int, kind: Character)
        -> (items: [PipelineResource], nextPageToken: String, totalSize: Int)
    {
        let rest = after.map { after in resources.filter { $0.id > after } } ?? resources
        let page = Array(rest.prefix(pageSize))
        let next = rest.count > page.count ? page.last.map { token(after: $0.id, kind: kind) } ?? "" : ""
        return (page, next, resources.count)
    }

    static func token(after id: String, kind: Character) -> String {
        String(kind) + id.utf8.lowercaseHex
    }

    static func id(inToken token: String, kind: Character, list: String) throws(GatewayError) -> String {
        let invalid = GatewayError(
            .invalidArgument,
            "invalid page_token \"\(token)\": pass a next_page_token this \(list) list gave, or none")
        let hex = Array(token.utf8.dropFirst())
        guard token.first == kind, !hex.isEmpty, hex.count % 2 == 0 else { throw invalid }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(hex.count / 2)
        // Lowercase only, as `token(after:kind:)` writes it: one token per id.
        func digit(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            default: nil
            }
        }
        for i in stride(from: 0, to: hex.count, by: 2) {
            guard let high = digit(hex[i]), let low = digit(hex[i + 1]) else { throw invalid }
            bytes.append(high << 4 | low)
        }
        guard let id = String(validating: bytes, as: UTF8.self) else { throw invalid }
        return id
    }
}

/// One page of a pipeline's releases (``PipelineReleaseQuery/page(of:)``).
package struct PipelineReleasePage: Sendable, Equatable {
    package var releases: [PipelineResource]
    /// "" on the last page.
    package var nextPageToken: String
    /// The releases of the pipeline in all pages.
    package var totalSize: Int

    package init(releases: [PipelineResource], nextPageToken: String, totalSize: Int) {
        self.releases = releases
        self.nextPageToken = nextPageToken
        self.totalSize = totalSize
    }
}
