import TriggerModel

/// The `Accept` request header of RFC 9110 §12.5.1, parsed into media ranges with their weights, and the
/// question content negotiation asks of it: how acceptable is this media type?
///
/// `Accept = #( media-range [ weight ] )`, `media-range = ( "*/*" / ( type "/" "*" ) / ( type "/" subtype ) )
/// parameters`, `weight = OWS ";" OWS "q=" qvalue` (§12.4.2). Rules applied:
/// - every field line counts: the lines are one comma-separated list (RFC 9110 §5.3), so callers pass
///   them all;
/// - types, subtypes and parameter names are case-insensitive (§8.3.1), so `Text/Event-Stream` is
///   `text/event-stream`;
/// - `q=0` means "not acceptable" (§12.4.2); a member without `q` weighs 1;
/// - the most specific range that matches a type decides its weight, whatever the order (§12.5.1:
///   `text/event-stream` beats `text/*` beats `*/*`; a range with parameters beats the same one without);
/// - a member that does not parse (no `/`, a `*` type with a concrete subtype, a `q` outside 0–1 or with
///   more than three decimals) is ignored, as a robust recipient would; a header where no member parses,
///   or an empty one, is treated as absent: anything is acceptable (§12.5.1, "a request without any Accept
///   header field implies that the user agent will accept any media type").
///
/// Parameters other than `q` only add specificity: the gateway's own representations carry none, so a
/// range such as `application/json; charset=utf-8` is taken to mean `application/json`. Members are split
/// at every comma, also one inside a quoted parameter value (the piece after it is read as a member);
/// that only matters for parameters no media type we serve defines.
package struct AcceptHeader: Sendable, Equatable {
    package struct MediaRange: Sendable, Equatable {
        /// Lowercased; `*` for a wildcard.
        package var type: String
        package var subtype: String
        /// Count of parameters other than `q`, for precedence.
        package var parameterCount: Int
        /// The weight in thousandths (0...1000), so comparisons are exact.
        package var quality: Int
    }

    /// Nil when the header is absent, empty or has no valid member: anything is acceptable.
    package let ranges: [MediaRange]?

    /// Parses every `Accept` field line of a request (pass none when it has none).
    package init<Lines: Sequence<String>>(lines: Lines) {
        var ranges: [MediaRange] = []
        for line in lines {
            if line == "*/*" {
                // What most HTTP libraries send by default (python-requests, curl): no parse needed.
                ranges.append(MediaRange(type: "*", subtype: "*", parameterCount: 0, quality: 1000))
                continue
            }
            if let range = Self.parseBareMediaType(line) {
                ranges.append(range)
                continue
            }
            for member in line.split(separator: ",") {
                if let range = Self.parseMember(member) { ranges.append(range) }
            }
        }
        self.ranges = ranges.isEmpty ? nil : ranges
    }

    /// The weight (0...1000 thousandths) the client gives `mediaType` (`type/subtype`, no parameters):
    /// that of the most specific matching range, 0 when none matches.
    package func quality(of mediaType: String) -> Int {
        // No header: anything weighs 1, decided without looking at `mediaType` (the usual trigger has no
        // `Accept`; lowercasing and splitting the type cost ~4 000 instructions per question, issue 11).
        guard ranges != nil else { return 1000 }
        return match(mediaType)?.quality ?? 0
    }

    /// True when `mediaType` matches a range naming its type and subtype (not through a wildcard).
    package func namesExplicitly(_ mediaType: String) -> Bool {
        guard ranges != nil else { return false }  // no header names anything
        guard let found = match(mediaType) else { return false }
        return found.type != "*" && found.subtype != "*"
    }

    /// True when the client accepts `mediaType` at all (weight above 0).
    package func accepts(_ mediaType: String) -> Bool {
        quality(of: mediaType) > 0
    }

    private func match(_ mediaType: String) -> MediaRange? {
        // Callers pass lowercase constants: lowercasing them anyway allocated (over 15 bytes) on every question.
        let hasUppercase = mediaType.utf8.contains(where: { $0 &- UInt8(ascii: "A") < 26 })
        let lowered = hasUppercase ? mediaType.lowercased() : mediaType
        guard let slash = lowered.utf8.firstIndex(of: UInt8(ascii: "/")) else { return nil }
        let type = lowered[..<slash]
        let subtype = lowered[lowered.utf8.index(after: slash)...]
        guard let ranges else {
            return MediaRange(type: "*", subtype: "*", parameterCount: 0, quality: 1000)
        }
        var best: (range: MediaRange, specificity: Int)?
        for range in ranges {
            let specificity: Int
            if range.type == "*" {
                specificity = 0
            } else if range.type != type {
                continue
            } else if range.subtype == "*" {
                specificity = 1
            } else if range.subtype != subtype {
                continue
            } else {
                specificity = 2 + range.parameterCount
            }
            // Among equally specific ranges the first listed wins (the RFC leaves this case open).
            if specificity > (best?.specificity ?? -1) { best = (range, specificity) }
        }
        return best?.range
    }

    /// A line that is one lowercase `type/subtype` with nothing else (no list, parameters, weight or
    /// whitespace): what SDKs and the gateway's http transport send (`application/json`,
    /// `text/event-stream`). Read from its bytes; the general ``parseMember(_:)`` splits by `Character` and
    /// cost ~10 k instructions for `application/json` (bench/README "Fourteenth session: the demo runner").
    /// Nil for anything else, which the general parse then reads; where this answers, it answers the same
    /// (the fuzzer checks it).
    package static func parseBareMediaType(_ line: String) -> MediaRange? {
        let bytes = line.utf8
        var slash: String.UTF8View.Index?
        var index = bytes.startIndex
        while index != bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "/") {
                guard slash == nil else { return nil }
                slash = index
            } else if byte &- UInt8(ascii: "A") < 26 || !HTTPToken.isTChar(byte) {
                return nil  // uppercase (lowered by the general parse), a separator, whitespace
            }
            bytes.formIndex(after: &index)
        }
        guard let slash, slash != bytes.startIndex else { return nil }
        let afterSlash = bytes.index(after: slash)
        guard afterSlash != bytes.endIndex else { return nil }
        let type = String(line[..<slash])
        let subtype = String(line[afterSlash...])
        if type == "*" && subtype != "*" { return nil }
        return MediaRange(type: type, subtype: subtype, parameterCount: 0, quality: 1000)
    }

    /// One list member: `type/subtype *( OWS ";" OWS parameter ) [ weight ]`; nil when malformed.
    package static func parseMember(_ member: Substring) -> MediaRange? {
        let pieces = member.split(separator: ";", omittingEmptySubsequences: false)
        let mediaType = trimmed(pieces[0]).lowercased()
        if mediaType.isEmpty { return nil }
        let halves = mediaType.split(separator: "/", omittingEmptySubsequences: false)
        guard halves.count == 2, isToken(halves[0]), isToken(halves[1]) else { return nil }
        let type = String(halves[0])
        let subtype = String(halves[1])
        if type == "*" && subtype != "*" { return nil }
        var quality = 1000
        var parameterCount = 0
        for piece in pieces.dropFirst() {
            let parameter = trimmed(piece)
            if parameter.isEmpty { continue }
            guard let eq = parameter.firstIndex(of: "=") else { return nil }
            let name = trimmed(parameter[..<eq]).lowercased()
            if name == "q" {
                guard let q = parseQuality(trimmed(parameter[parameter.index(after: eq)...])) else { return nil }
                quality = q
                // Anything after the weight would be an accept-ext of RFC 2616, gone from RFC 9110: ignore it.
                break
            }
            parameterCount += 1
        }
        return MediaRange(type: type, subtype: subtype, parameterCount: parameterCount, quality: quality)
    }

    /// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` (RFC 9110 §12.4.2), in thousandths.
    static func parseQuality(_ text: Substring) -> Int? {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, first == UInt8(ascii: "0") || first == UInt8(ascii: "1") else { return nil }
        var value = Int(first - UInt8(ascii: "0")) * 1000
        if bytes.count == 1 { return value }
        guard bytes[1] == UInt8(ascii: "."), bytes.count <= 5 else { return nil }
        var scale = 100
        for digit in bytes[2...] {
            guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") else { return nil }
            value += Int(digit - UInt8(ascii: "0")) * scale
            scale /= 10
        }
        return value <= 1000 ? value : nil
    }

    private static func trimmed(_ s: Substring) -> Substring {
        var s = s.drop { $0 == " " || $0 == "\t" }
        while let last = s.last, last == " " || last == "\t" { s = s.dropLast() }
        return s
    }

    /// `token = 1*tchar` (RFC 9110 §5.6.2).
    private static func isToken(_ s: Substring) -> Bool {
        HTTPToken.isToken(s.utf8)
    }
}
