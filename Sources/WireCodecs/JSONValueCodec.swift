package import NIOCore
package import TriggerModel

/// JSON bytes ↔ `Value`: the one JSON implementation of the gateway's wire codecs (REST bodies, multipart
/// fields, the HTTP backend hop, SSE data lines).
///
/// Decoding is a hand-written RFC 8259 parser over the buffer's bytes: objects keep their key order, nesting is
/// capped by `CodecLimits.maxDepth` and width by `CodecLimits.maxJSONMembers`, and a string that is a base64 data URI becomes a `.blob` (unless `DataURIs.text`) whose payload is
/// decoded straight from the body bytes. Errors are `GatewayError(.invalidArgument)` naming the byte offset
/// (syntax) or the JSON path (content, e.g. `data[0].variable.image: invalid base64 ...`).
package enum JSONValueCodec {
    /// What a JSON string that is a base64 data URI decodes to.
    package enum DataURIs: Sendable {
        /// A `.blob` (the Instill REST rule, API.md §2: "a string value that is a data URI is a binary").
        case binaries
        /// A `.string` like any other: for an API whose binaries never travel as JSON strings, so that a text
        /// input that happens to look like a data URI stays text (Craft AI: files come only as multipart parts,
        /// `json_inputs` and endpoint parameters carry the other inputs, CLIENTS.md §3.4 and §3.5).
        case text
    }

    /// Decodes one JSON document; anything but whitespace after it is an error.
    ///
    /// - Parameter path: prepended to the paths in error messages (e.g. a multipart field name).
    package static func decode(
        _ bytes: ByteBuffer, limits: CodecLimits = .defaults, path: String = "", dataURIs: DataURIs = .binaries
    ) throws -> Value {
        var members = 0
        return try decode(bytes, limits: limits, path: path, members: &members, dataURIs: dataURIs)
    }

    /// As `decode(_:limits:path:)`, for one of several documents of a request (multipart fields): `members`
    /// holds the object members and array elements of the documents before it and gains this one's, so that
    /// `limits.maxJSONMembers` holds for the whole request body.
    package static func decode(
        _ bytes: ByteBuffer, limits: CodecLimits, path: String, members: inout Int, dataURIs: DataURIs = .binaries
    ) throws -> Value {
        do {
            return try parse(bytes, limits: limits, path: path, members: &members, dataURIs: dataURIs)
        } catch {
            throw error.error
        }
    }

    /// Decodes a document that must be an object; `what` names it in the error ("request body").
    package static func decodeObject(
        _ bytes: ByteBuffer,
        limits: CodecLimits = .defaults,
        what: String = "body",
        dataURIs: DataURIs = .binaries
    ) throws -> ValueObject {
        guard case .object(let object) = try decode(bytes, limits: limits, dataURIs: dataURIs) else {
            throw GatewayError(.invalidArgument, "\(what) must be a JSON object")
        }
        return object
    }

    /// As `decodeObject`, taking the body over: data URIs of 64 KiB or more are decoded in place, into the
    /// body's own storage, and their blobs are slices of it (issue 12). A 24 MiB base64 body then needs no
    /// second 18 MiB buffer; the body's storage lives as long as such a blob. A body that can hold such a URI
    /// (64 KiB or more) is made unique first (copied if someone else still holds it), so no other holder sees it
    /// change; a shorter one is only read, wherever its storage is.
    ///
    /// - Parameter keepCanonicalBase64: keep such data URIs whose payload is canonical base64 as that text
    ///   (`Blob(canonicalBase64:)`, a slice of the body), validated but not decoded: for a request bound for
    ///   an http runner, whose JSON carries the same text again (issue 12). Other payloads are decoded in place.
    /// - Parameter checkedAlphabet: with `keepCanonicalBase64`, addresses in `body`'s storage already found in
    ///   base64's standard alphabet, not checked again (`DataURI.canonicalBase64Header(_:checkedAlphabet:)`).
    package static func decodeObject(
        inPlace body: consuming ByteBuffer,
        limits: CodecLimits = .defaults,
        what: String = "body",
        keepCanonicalBase64: Bool = false,
        checkedAlphabet: Range<UInt>? = nil
    ) throws -> ValueObject {
        var body = consume body
        // Only strings of at least `JSONParser.inPlaceBlobBytes` are decoded or sliced in place, so a shorter body
        // is parsed where it is, shared or not: most REST bodies are a slice of the connection's read buffer, and
        // making them unique cost a copy (~600 instructions, an allocation) per call (issue 11).
        let inPlace = body.readableBytes >= JSONParser.inPlaceBlobBytes
        if inPlace { body.withUnsafeMutableReadableBytes { _ in } }  // copy-on-write now, if the storage is shared
        let value: Value
        do {
            value = try parse(
                body, limits: limits, path: "", inPlace: inPlace, keepCanonicalBase64: keepCanonicalBase64,
                checkedAlphabet: checkedAlphabet)
        } catch {
            throw error.error
        }
        guard case .object(let object) = value else {
            throw GatewayError(.invalidArgument, "\(what) must be a JSON object")
        }
        return object
    }

    /// Like `decode`, but keeps syntax failures apart from content failures (bad base64, too deep), so that a
    /// caller can fall back to treating the text as a plain string only when it was not JSON at all.
    static func parse(
        _ bytes: ByteBuffer,
        limits: CodecLimits,
        path: String,
        inPlace: Bool = false,
        keepCanonicalBase64: Bool = false,
        checkedAlphabet: Range<UInt>? = nil
    ) throws(JSONParseFailure) -> Value {
        var members = 0
        return try parse(
            bytes, limits: limits, path: path, members: &members, inPlace: inPlace,
            keepCanonicalBase64: keepCanonicalBase64, checkedAlphabet: checkedAlphabet)
    }

    /// `parse`, counting members from `members` (see `decode(_:limits:path:members:)`).
    static func parse(
        _ bytes: ByteBuffer,
        limits: CodecLimits,
        path: String,
        members: inout Int,
        inPlace: Bool = false,
        keepCanonicalBase64: Bool = false,
        checkedAlphabet: Range<UInt>? = nil,
        dataURIs: DataURIs = .binaries
    ) throws(JSONParseFailure) -> Value {
        guard bytes.readableBytes > 0 else {
            let suffix = path.isEmpty ? "" : " (in \(path))"
            throw JSONParseFailure(
                isSyntax: true,
                error: GatewayError(
                    .invalidArgument,
                    "invalid JSON at byte 0: empty document, expected a JSON value\(suffix)"
                )
            )
        }
        let membersBefore = members
        var membersAfter = members
        let result = bytes.withUnsafeReadableBytes { raw -> Result<Value, JSONParseFailure> in
            var parser = JSONParser(
                raw, maxDepth: limits.maxDepth, maxMembers: limits.maxJSONMembers, membersBefore: membersBefore,
                pathPrefix: path, inPlaceSource: inPlace ? bytes : nil, keepCanonicalBase64: keepCanonicalBase64,
                checkedAlphabet: checkedAlphabet, dataURIsAsBinaries: dataURIs == .binaries,
                nonFiniteNumbers: limits.nonFiniteNumbers)
            defer { membersAfter = parser.members }
            do {
                return .success(try parser.parseDocument())
            } catch let failure as JSONParseFailure {
                return .failure(failure)
            } catch {
                // A value the parser rejected on its own terms (a data URI, a limit) is already a GatewayError.
                let gatewayError = error as? GatewayError ?? GatewayError(.invalidArgument, "invalid JSON value")
                return .failure(JSONParseFailure(isSyntax: false, error: gatewayError))
            }
        }
        members = membersAfter
        return try result.get()
    }

    /// Renders `value` as compact JSON text (no newlines), appending to `buffer`.
    package static func encode(_ value: Value) -> ByteBuffer {
        var buffer = ByteBuffer()
        write(value, into: &buffer)
        return buffer
    }
}

/// A decode failure before it becomes the client-facing error: `isSyntax` is true when the text was not JSON.
struct JSONParseFailure: Error {
    var isSyntax: Bool
    var error: GatewayError
}
