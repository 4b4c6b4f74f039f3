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
        guard pageSize >= 0 else {
            throw GatewayError(.invalidArgument, "page_size must not be negative (it is \(pageSize))")
        }
        guard filter.isEmpty else {
            throw GatewayError(
                .invalidArgument, "filter expressions are not supported on the releases list (filter \"\(filter)\")")
        }
        self.ref = ref
        self.pageSize = pageSize == 0 ? Self.defaultPageSize : min(pageSize, Self.maximumPageSize)
        after = pageToken.isEmpty ? nil : try Self.releaseID(inToken: pageToken)
    }

    /// The page of `releases` (sorted by id, as `RouteTable.releases(of:)` gives them) this query asks for:
    /// those after the token's id, at most ``pageSize``, with the token of the next page ("" when this is the
    /// last) and the number of releases in all.
    package func page(of releases: [PipelineResource]) -> PipelineReleasePage {
        let rest = after.map { after in releases.filter { $0.id > after } } ?? releases
        let page = Array(rest.prefix(pageSize))
        let next = rest.count > page.count ? page.last.map { Self.token(after: $0.id) } ?? "" : ""
        return PipelineReleasePage(releases: page, nextPageToken: next, totalSize: releases.count)
    }

    /// `r` and the release id's UTF-8 in lowercase hex: opaque to clients, and any id (however odd) fits.
    package static func token(after id: String) -> String {
        "r" + id.utf8.lowercaseHex
    }

    private static func releaseID(inToken token: String) throws(GatewayError) -> String {
        let invalid = GatewayError(
            .invalidArgument, "invalid page_token \"\(token)\": pass a next_page_token this list gave, or none")
        let hex = Array(token.utf8.dropFirst())
        guard token.hasPrefix("r"), !hex.isEmpty, hex.count % 2 == 0 else { throw invalid }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(hex.count / 2)
        // Lowercase only, as `token(after:)` writes it: one token per id.
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
