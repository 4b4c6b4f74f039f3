package import NIOCore
package import TriggerModel

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Told by a `MultipartFormDecoder` (batch mode) about each file part while it streams: the HTTP/1.1
/// frontend's streaming relay (issue 12) sends a file's base64 to an http runner as the bytes arrive instead
/// of after the whole body. Called synchronously from `feed`, in the body's order; the bytes handed to
/// `fileBytes` are exactly those the decoder appends to the part's blob (bytes held back as a possible
/// delimiter come once they are known to be data), and `fileEnded` gets the blob's buffer as the batch keeps it.
package protocol MultipartFileObserver: AnyObject {
    /// A file part's headers were read; returns whether to be handed this part's bytes.
    func fileBegan(_ start: MultipartFileStart) -> Bool
    /// The next bytes of the observed part (any size, never empty).
    func fileBytes(_ bytes: UnsafeRawBufferPointer)
    /// The observed part ended (its closing delimiter was found); `body` is its whole content.
    func fileEnded(_ body: ByteBuffer)
}

/// What a `MultipartFileObserver` learns when a file part begins.
package struct MultipartFileStart {
    /// The part's field name, file name and content type (RFC 7578 §4.2, §4.4).
    package let name: String
    package let fileName: String?
    package let contentType: String?
    /// The body offset of the part's first content byte.
    package let dataOffset: Int
    /// Bytes of the close delimiter as every common sender writes it, `CRLF--boundary--CRLF` (RFC 2046
    /// §5.1.1; curl, browsers, Go's mime/multipart, Python's urllib3): when the file is the body's last part,
    /// its length is the body's length less `dataOffset` and this.
    package let closingBytes: Int
    private let part: PartHeaders
    private let fieldsBefore: MultipartFieldAssembler

    init(part: PartHeaders, dataOffset: Int, closingBytes: Int, fieldsBefore: MultipartFieldAssembler) {
        self.name = part.name
        self.fileName = part.fileName
        self.contentType = part.contentType
        self.part = part
        self.dataOffset = dataOffset
        self.closingBytes = closingBytes
        self.fieldsBefore = fieldsBefore
    }

    /// The batch the body would make if this part, holding `content`, were its last.
    ///
    /// - Throws: what `MultipartFormDecoder.finish()` would (a bad field name, a gap in the batch).
    package func inputs(ifLastWith content: ByteBuffer) throws -> [TriggerInput] {
        var assembler = fieldsBefore
        try assembler.add(part: part, body: content)
        return try assembler.inputs()
    }
}

/// A streaming `multipart/form-data` decoder (RFC 7578 over RFC 2046 §5.1) that turns the parts of a REST
/// trigger into its batch: `variables[i].key` / `inputs[i].key` fields, arrays as `key[j]`; or, made with
/// `collectingParts: true`, hands over the plain parts (`finishParts()`) for surfaces with their own field
/// conventions (Craft AI's `json_inputs` plus one part per file).
///
/// Feed it the body in chunks of any size (one byte at a time works; a delimiter may straddle chunks), then call
/// `finish()`. The delimiter is found by `MultipartDelimiterSearch` (vector compares), and part data is copied
/// once, from the chunk into the part's buffer; only the few bytes that might start a delimiter are held back
/// between chunks. Caps (parts, part header bytes, body bytes, batch index) are checked as bytes arrive.
///
/// Ours rather than vapor/multipart-kit's `MultipartParser` (4.7.1, streaming too): that parser has no caps on
/// part count or part header size (a client could send a million empty parts or one endless header line), does
/// not decode RFC 8187 `filename*`, and leaves the form-to-batch mapping to us. Speed: ours is about 10× as
/// fast on an 8 MiB file with 1/1800 of the allocations (rows "multipart parse, WireCodecs" and "multipart
/// parse, MultipartKit" of one bench/micro run, side by side in bench/README.md "Our code or a library").
package struct MultipartFormDecoder {
    private enum State {
        /// Before the first delimiter: bytes are discarded.
        case preamble
        /// Right after a delimiter: `--` closes the body, transport padding + CRLF starts a part's headers.
        case afterDelimiter
        case headers
        case body
        /// After the closing delimiter: bytes are discarded.
        case epilogue
    }

    private let boundary: String
    /// `CRLF--boundary`: the delimiter as it appears before every part and before the close (RFC 2046 §5.1.1).
    private let delimiter: [UInt8]
    private let search: MultipartDelimiterSearch
    private let limits: CodecLimits
    private var state = State.preamble
    /// Trailing bytes of the data seen so far that are a proper prefix of `delimiter`. It starts as CRLF so that
    /// a delimiter at the very start of the body (which has no CRLF before it) is found like any other.
    private var carry: [UInt8] = [0x0D, 0x0A]
    /// The bytes after a delimiter, then the header block of the current part.
    private var headerBytes: [UInt8] = []
    private var partCount = 0
    private var receivedBytes = 0
    /// The body offset of the chunk being fed.
    private var chunkStart = 0
    private var part: PartHeaders?
    private var partBody = ByteBuffer()
    private var assembler: MultipartFieldAssembler
    /// Set in parts mode (`collectingParts`): the parts so far, in order, instead of a batch.
    private var parts: [MultipartPart]?
    /// Told about file parts as they stream (batch mode only; see `MultipartFileObserver`).
    package var fileObserver: (any MultipartFileObserver)?
    /// Whether `fileObserver` asked for the current part's bytes.
    private var observingPart = false
    /// The body's `Content-Length`, when it declared one: sizes the first file part's storage (see
    /// `firstFileStorage`).
    private let declaredLength: Int?
    /// Whether a file part has begun (only the first is sized from `declaredLength`).
    private var sawFilePart = false

    /// - Parameter boundary: the `boundary` parameter of the request's `Content-Type`
    ///   (see `MediaType.parse`).
    /// - Parameter declaredLength: the body's `Content-Length` (already checked against the cap), if any.
    /// - Throws: `GatewayError(.invalidArgument)` if the boundary is empty, longer than 70 characters or holds
    ///   characters RFC 2046 §5.1.1 does not allow.
    package init(
        boundary: String, limits: CodecLimits, collectingParts: Bool = false, declaredLength: Int? = nil
    ) throws {
        let bytes = Array(boundary.utf8)
        guard !bytes.isEmpty, bytes.count <= 70 else {
            throw GatewayError(.invalidArgument, "multipart boundary must be 1 to 70 characters long")
        }
        // bchars are printable ASCII; CR and LF in particular must not appear, which the scanner relies on.
        guard bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else {
            throw GatewayError(.invalidArgument, "multipart boundary has characters RFC 2046 does not allow")
        }
        self.boundary = boundary
        self.delimiter = [0x0D, 0x0A, UInt8(ascii: "-"), UInt8(ascii: "-")] + bytes
        self.search = MultipartDelimiterSearch(delimiter: delimiter)
        self.limits = limits
        self.assembler = MultipartFieldAssembler(limits: limits)
        self.parts = collectingParts ? [] : nil
        self.declaredLength = declaredLength
    }

    /// Consumes the next piece of the body.
    ///
    /// - Throws: `GatewayError(.payloadTooLarge)` past `limits.maxBodyBytes`, `.invalidArgument` for a malformed
    ///   body or a field that breaks a limit.
    package mutating func feed(_ chunk: ByteBuffer) throws {
        chunkStart = receivedBytes
        receivedBytes += chunk.readableBytes
        guard receivedBytes <= limits.maxBodyBytes else {
            throw GatewayError(.payloadTooLarge, "multipart body is larger than \(limits.maxBodyBytes) bytes")
        }
        try chunk.withUnsafeReadableBytes { raw in
            var offset = 0
            while offset < raw.count {
                switch state {
                case .preamble, .body:
                    if try scanForDelimiter(raw, &offset) {
                        if state == .body { try finishPart() }
                        state = .afterDelimiter
                        headerBytes.removeAll(keepingCapacity: true)
                    }
                case .afterDelimiter:
                    try readAfterDelimiter(raw, &offset)
                case .headers:
                    try readHeaders(raw, &offset)
                case .epilogue:
                    offset = raw.count
                }
            }
        }
    }

    /// Ends the body and returns the batch.
    ///
    /// - Throws: `GatewayError(.invalidArgument)` if the closing `--boundary--` never came, or the fields do not
    ///   make a valid batch (none, or gaps in the batch indices).
    package mutating func finish() throws -> [TriggerInput] {
        guard state == .epilogue else {
            throw GatewayError(
                .invalidArgument,
                "multipart body ended before its closing boundary \"--\(boundary)--\""
            )
        }
        return try assembler.inputs()
    }

    /// Ends the body and returns its parts in order (a decoder made with `collectingParts: true`).
    ///
    /// - Throws: `GatewayError(.invalidArgument)` if the closing `--boundary--` never came.
    package mutating func finishParts() throws -> [MultipartPart] {
        guard state == .epilogue else {
            throw GatewayError(
                .invalidArgument,
                "multipart body ended before its closing boundary \"--\(boundary)--\""
            )
        }
        return parts ?? []
    }

    /// Where the current part's bytes are gathered (tests: a part grows in amortised linear time, its storage
    /// moving O(log n) times, never once per chunk; see `BodyGatherer`). Nil outside a part's body.
    package var partStorageAddress: UInt? {
        guard state == .body, partBody.readableBytes > 0 else { return nil }
        return partBody.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
    }

    /// The capacity of the current part's storage in bytes (tests: the first file part's is sized from the
    /// declared length at once). Nil outside a part's body.
    package var partStorageCapacity: Int? {
        guard state == .body, partBody.readableBytes > 0 else { return nil }
        return partBody.capacity
    }

    // MARK: Scanning

    /// Looks for the delimiter from `offset`, handing the data before it to the current part (or dropping it in
    /// the preamble). Returns true with `offset` just past the delimiter when it was found.
    private mutating func scanForDelimiter(_ raw: UnsafeRawBufferPointer, _ offset: inout Int) throws -> Bool {
        let base = raw.baseAddress!
        let end = raw.count
        // A local copy: the closure mutates `self`, which must not overlap a borrow of `self.delimiter`.
        let delimiter = self.delimiter
        return delimiter.withUnsafeBytes { delimiterBytes -> Bool in
            let d = delimiterBytes.count
            if !carry.isEmpty {
                let need = d - carry.count
                let available = min(need, end - offset)
                if memcmp(base + offset, delimiterBytes.baseAddress! + carry.count, available) == 0 {
                    if available == need {
                        offset += available
                        carry.removeAll(keepingCapacity: true)
                        return true
                    }
                    carry.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[offset..<end]))
                    offset = end
                    return false
                }
                // The held-back bytes were data after all. The delimiter's only CR is its first byte, so no
                // delimiter can start inside them past that CR: they can all go.
                emit(carry)
                carry.removeAll(keepingCapacity: true)
            }
            if let i = search.firstMatch(in: raw, from: offset) {
                emit(UnsafeRawBufferPointer(rebasing: raw[offset..<i]))
                offset = i + d
                return true
            }
            if let i = search.partialMatchAtEnd(in: raw, from: offset) {
                emit(UnsafeRawBufferPointer(rebasing: raw[offset..<i]))
                carry.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[i..<end]))
                offset = end
                return false
            }
            emit(UnsafeRawBufferPointer(rebasing: raw[offset..<end]))
            offset = end
            return false
        }
    }

    private mutating func emit(_ bytes: UnsafeRawBufferPointer) {
        guard state == .body && bytes.count > 0 else { return }
        partBody.writeBytes(bytes)
        if observingPart { fileObserver?.fileBytes(bytes) }
    }

    private mutating func emit(_ bytes: [UInt8]) {
        guard state == .body && !bytes.isEmpty else { return }
        partBody.writeBytes(bytes)
        if observingPart { bytes.withUnsafeBytes { fileObserver?.fileBytes($0) } }
    }

    /// After a delimiter: `--` (the close), or optional blanks then CRLF (a part follows).
    private mutating func readAfterDelimiter(_ raw: UnsafeRawBufferPointer, _ offset: inout Int) throws {
        while offset < raw.count {
            let c = raw[offset]
            offset += 1
            headerBytes.append(c)
            if headerBytes == [UInt8(ascii: "-"), UInt8(ascii: "-")] {
                state = .epilogue
                return
            }
            if headerBytes.count == 1 && c == UInt8(ascii: "-") { continue }
            if c == 0x0A && headerBytes.count >= 2 && headerBytes[headerBytes.count - 2] == 0x0D {
                try startPart()
                return
            }
            let isPadding = c == 0x20 || c == 0x09 || c == 0x0D
            guard isPadding, headerBytes.count <= 256 else {
                throw GatewayError(.invalidArgument, "malformed multipart body: unexpected bytes after a boundary")
            }
        }
    }

    private mutating func startPart() throws {
        partCount += 1
        guard partCount <= limits.maxMultipartParts else {
            throw GatewayError(
                .invalidArgument,
                "multipart body has more than the limit of \(limits.maxMultipartParts) parts"
            )
        }
        state = .headers
        headerBytes.removeAll(keepingCapacity: true)
    }

    private func headersTooLarge() -> GatewayError {
        GatewayError(
            .invalidArgument,
            "multipart part \(partCount) has more than \(limits.maxMultipartPartHeaderBytes) bytes of headers"
        )
    }

    /// Collects the header block up to its blank line, line by line with `memchr`.
    private mutating func readHeaders(_ raw: UnsafeRawBufferPointer, _ offset: inout Int) throws {
        let base = raw.baseAddress!
        while offset < raw.count {
            let lineEnd: Int
            if let hit = memchr(base + offset, 0x0A, raw.count - offset) {
                lineEnd = base.distance(to: UnsafeRawPointer(hit)) + 1
            } else {
                lineEnd = raw.count
            }
            headerBytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[offset..<lineEnd]))
            offset = lineEnd
            // The limit counts the field lines with their CRLFs, not the blank line that ends the block: the
            // request head's `max_header_bytes` counts the same way (review 18, F6). So the bytes gathered may
            // reach the limit + 2 (the blank line); a complete field line past the limit fails below.
            guard headerBytes.count <= limits.maxMultipartPartHeaderBytes + 2 else { throw headersTooLarge() }
            guard headerBytes.last == 0x0A else { return }
            let n = headerBytes.count
            let blankLine =
                n == 2 ? headerBytes == [0x0D, 0x0A] : n >= 4 && headerBytes[(n - 4)...] == [0x0D, 0x0A, 0x0D, 0x0A]
            if !blankLine, n > limits.maxMultipartPartHeaderBytes { throw headersTooLarge() }
            if blankLine {
                let part = try PartHeaders(parsing: headerBytes, partNumber: partCount)
                self.part = part
                headerBytes.removeAll(keepingCapacity: true)
                partBody = firstFileStorage(isFile: part.isFile, dataOffset: chunkStart + offset)
                state = .body
                if let fileObserver, parts == nil, part.isFile {
                    observingPart = fileObserver.fileBegan(
                        MultipartFileStart(
                            part: part, dataOffset: chunkStart + offset, closingBytes: delimiter.count + 4,
                            fieldsBefore: assembler))
                }
                return
            }
        }
    }

    /// The storage a part's bytes are gathered into. The first file part of a body of declared length gets it
    /// whole, sized for the rest of the body less its closing delimiter (`LargeBodyStorage`: advised as huge
    /// pages past its first 8 MiB): grown by doubling instead, a 32 MiB file's storage was copied by `realloc` on
    /// the way and its pages faulted one by one (~9 000 faults, most of the gateway's CPU per upload; issue 12).
    /// Only the first: the size is an upper bound (exact when the file is the last part, the shape uploads have),
    /// and a body of many small file parts must not get a large storage for each.
    private mutating func firstFileStorage(isFile: Bool, dataOffset: Int) -> ByteBuffer {
        guard isFile, !sawFilePart else { return ByteBuffer() }
        sawFilePart = true
        guard let declaredLength else { return ByteBuffer() }
        let bound = declaredLength - dataOffset - (delimiter.count + 4)
        guard bound >= LargeBodyStorage.hugePageThreshold else { return ByteBuffer() }
        return LargeBodyStorage.allocate(capacity: bound)
    }

    private mutating func finishPart() throws {
        guard let part else { return }
        self.part = nil
        let body = partBody
        partBody = ByteBuffer()
        if observingPart {
            observingPart = false
            fileObserver?.fileEnded(body)
        }
        if parts != nil {
            parts!.append(
                MultipartPart(name: part.name, fileName: part.fileName, contentType: part.contentType, body: body)
            )
            return
        }
        try assembler.add(part: part, body: body)
    }
}
