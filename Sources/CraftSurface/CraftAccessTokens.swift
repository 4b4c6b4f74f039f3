import Crypto
package import FoundationEssentials
import JWTKit
import TriggerModel

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Craft AI access tokens: what `POST /api/v1/auth/refresh` issues for an SDK token, and what every other
/// `/api/v1` call presents as `Authorization: Bearer <jwt>` (CLIENTS.md §3.2).
///
/// HS256 JWTs (RFC 7519; RFC 7518 §3.2) signed with jwt-kit. Claims: `sub` (the principal of the SDK token
/// that was refreshed, or `anonymous` when auth is off), `iat` and `exp` as numeric dates (the SDK computes
/// its refresh time from `exp - iat`, so both are required), and `tkb`, which SDK token was refreshed
/// (``binding(ofSDKToken:)``; absent with auth off). Verification checks that the header names HS256
/// (RFC 8725 §3.1: the expected algorithm, not whatever the header says) and that every part is unpadded
/// base64url (RFC 7515 §2), the signature, that `exp` has not passed, and that neither `iat` nor an `nbf`
/// (RFC 7519 §4.1.5; the gateway issues none) is in the future (with `leeway` for clocks of instances that
/// share the key), against an injectable clock.
package struct CraftAccessTokens: Sendable {
    /// The `sub` of tokens issued while auth is off.
    package static let anonymousSubject = "anonymous"
    /// Shortest accepted key: RFC 7518 §3.2 requires a key at least as long as the hash output (32 bytes).
    package static let minimumKeyBytes = 32

    /// The only `alg` accepted (RFC 7518 §3.2), the one `keys()` signs with.
    static let algorithm = "HS256"

    private let key: [UInt8]
    private let lifetime: Duration
    private let now: @Sendable () -> Date
    private let leeway: Duration

    /// - Parameters:
    ///   - key: the HMAC key (at least `minimumKeyBytes`).
    ///   - lifetime: from `iat` to `exp`.
    ///   - now: the clock (tests move it).
    package init(
        key: [UInt8],
        lifetime: Duration,
        leeway: Duration = .seconds(60),
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.key = key
        self.lifetime = lifetime
        self.now = now
        self.leeway = leeway
    }

    /// A signed token for `subject`, valid for the configured lifetime from now; `sdkTokenBinding` (the
    /// ``binding(ofSDKToken:)`` of the SDK token refreshed) goes in its `tkb` claim when given.
    package func issue(subject: String, sdkTokenBinding: String? = nil) async throws -> String {
        let issued = now()
        let seconds = Double(lifetime.components.seconds)
        // Whole seconds: the SDK and RFC 7519 NumericDate readers are happiest with integers.
        let iat = Date(timeIntervalSince1970: issued.timeIntervalSince1970.rounded(.down))
        let claims = Claims(
            sub: SubjectClaim(value: subject),
            iat: IssuedAtClaim(value: iat),
            exp: ExpirationClaim(value: iat.addingTimeInterval(seconds)),
            tkb: sdkTokenBinding
        )
        return try await keys().sign(claims)
    }

    /// The `tkb` claim for SDK token `token`: unpadded base64url of the first 16 bytes of
    /// HMAC-SHA256(key, "craft-sdk-token:" + token). It lets a reload that rotates an SDK token's value end the
    /// access tokens issued for the old value at once, not when they expire (a lifetime may be 30 days; finding
    /// I3 of the thirtieth review). Keyed, so that a JWT (readable by anyone who sees it, e.g. in a log) names
    /// its SDK token without letting guesses of the token be checked offline.
    package func binding(ofSDKToken token: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(
            for: Array("craft-sdk-token:\(token)".utf8), using: SymmetricKey(data: key))
        // base64 to base64url (RFC 4648 §5), padding dropped (RFC 7515 §2, as the JWT's own parts).
        let base64 = Data(Array(mac).prefix(16)).base64EncodedString().utf8
        return String(
            decoding: base64.compactMap { byte -> UInt8? in
                switch byte {
                case UInt8(ascii: "+"): UInt8(ascii: "-")
                case UInt8(ascii: "/"): UInt8(ascii: "_")
                case UInt8(ascii: "="): nil
                default: byte
                }
            }, as: UTF8.self)
    }

    /// Why a presented token was refused.
    package enum Failure: Error, Equatable, CustomStringConvertible {
        case malformed
        case badSignature
        case expired
        case notYetValid

        package var description: String {
            switch self {
            case .malformed: "the access token is not a JWT this gateway issued"
            case .badSignature: "the access token's signature does not verify"
            case .expired: "the access token has expired; refresh it"
            case .notYetValid: "the access token is not valid yet (its iat or nbf is in the future)"
            }
        }
    }

    /// What a valid access token grants.
    package struct Grant: Sendable, Equatable {
        /// Its `sub`: the principal (or ``CraftAccessTokens/anonymousSubject``).
        package var subject: String
        /// Its `tkb`: the ``CraftAccessTokens/binding(ofSDKToken:)`` of the SDK token it was issued for; nil for
        /// a token issued with auth off, or by a gateway older than the claim (2026-12-04).
        package var sdkTokenBinding: String?

        package init(subject: String, sdkTokenBinding: String? = nil) {
            self.subject = subject
            self.sdkTokenBinding = sdkTokenBinding
        }
    }

    /// The grant of a valid token. Throws `Failure`. Synchronous, so a request's head can ask before its body is
    /// read (security review 60, H1; diff review 60, M-2: a check of the signature alone let expired and revoked
    /// tokens have their bodies read): jwt-kit parses (its key collection, an actor, cannot be asked without
    /// waiting), swift-crypto's HMAC checks the signature in constant time, and the claims are checked here.
    package func verify(_ token: String) throws(Failure) -> Grant {
        // jwt-kit decodes padded base64 and would take whatever `alg` the header names: both are refused here,
        // before the signature is checked (finding I2 of the twenty-fourth review).
        guard !token.utf8.contains(UInt8(ascii: "=")),
            let parsed = try? DefaultJWTParser().parse(Array(token.utf8), as: Claims.self),
            parsed.header.alg == Self.algorithm
        else { throw .malformed }
        guard isSignedHere(token) else { throw .badSignature }
        let claims = parsed.payload
        let current = now().timeIntervalSince1970
        let slack = Double(leeway.components.seconds)
        if claims.exp.value.timeIntervalSince1970 <= current { throw .expired }
        if claims.iat.value.timeIntervalSince1970 > current + slack { throw .notYetValid }
        if let nbf = claims.nbf, nbf.value.timeIntervalSince1970 > current + slack { throw .notYetValid }
        return Grant(subject: claims.sub.value, sdkTokenBinding: claims.tkb)
    }

    /// Whether `token` is a compact JWS (RFC 7515 §7.1) whose HS256 signature this key made over its first two
    /// parts (swift-crypto's HMAC, compared in constant time).
    private func isSignedHere(_ token: String) -> Bool {
        let bytes = Array(token.utf8)
        guard let dot = bytes.lastIndex(of: UInt8(ascii: ".")), bytes.firstIndex(of: UInt8(ascii: ".")) != dot
        else { return false }
        // base64url without padding (RFC 7515 §2) to the alphabet and padding `Data(base64Encoded:)` reads.
        var signature = bytes[(dot + 1)...].map { byte -> UInt8 in
            switch byte {
            case UInt8(ascii: "-"): UInt8(ascii: "+")
            case UInt8(ascii: "_"): UInt8(ascii: "/")
            default: byte
            }
        }
        signature += repeatElement(UInt8(ascii: "="), count: (4 - signature.count % 4) % 4)
        guard let mac = Data(base64Encoded: Data(signature)) else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(
            mac, authenticating: bytes[..<dot], using: SymmetricKey(data: key))
    }

    /// jwt-kit's key collection (for signing) is an actor filled asynchronously; one per call keeps this type a
    /// plain value that a synchronous configuration build can make (the cost is one HMAC key setup).
    private func keys() async -> JWTKeyCollection {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: key), digestAlgorithm: .sha256)
        return keys
    }

    struct Claims: JWTPayload {
        var sub: SubjectClaim
        var iat: IssuedAtClaim
        var exp: ExpirationClaim
        /// Which SDK token was refreshed (``CraftAccessTokens/binding(ofSDKToken:)``); nil with auth off.
        var tkb: String?
        /// Not issued by the gateway; honoured when present (a token of another issuer sharing the key).
        var nbf: NotBeforeClaim?

        init(sub: SubjectClaim, iat: IssuedAtClaim, exp: ExpirationClaim, tkb: String?) {
            self.sub = sub
            self.iat = iat
            self.exp = exp
            self.tkb = tkb
        }

        /// Time claims are checked by `verify(_:)` against the injectable clock, not here (jwt-kit calls
        /// this with no clock of ours).
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }
}

/// Where the access-token key comes from: a configured file, or one generated once into the data directory.
package enum CraftSigningKey {
    /// The file name under `data_dir` of a generated key.
    package static let generatedFileName = "craft-jwt.key"

    /// The key bytes: the content of `secretFile` (trailing newline dropped) when set; otherwise the content of
    /// `dataDir/craft-jwt.key`, created with 32 random bytes (hex, mode 0600) when it does not exist. Two
    /// processes creating it at once agree: creation is exclusive (`O_EXCL`), and the loser reads the winner's.
    ///
    /// - Throws: `KeyError` naming the file when it cannot be read or written, or is shorter than 32 bytes.
    package static func load(secretFile: String?, dataDir: String) throws(KeyError) -> [UInt8] {
        if let secretFile {
            let key = try read(secretFile)
            guard key.count >= CraftAccessTokens.minimumKeyBytes else {
                throw KeyError(path: secretFile, reason: "holds \(key.count) bytes; at least 32 are needed")
            }
            return key
        }
        let path = dataDir.hasSuffix("/") ? dataDir + generatedFileName : "\(dataDir)/\(generatedFileName)"
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd >= 0 {
            // 32 bytes as four words of the kernel's CSPRNG output (one buffered read, not a syscall per byte).
            let digits = Array("0123456789abcdef".utf8)
            var hex: [UInt8] = []
            for _ in 0..<(CraftAccessTokens.minimumKeyBytes / 8) {
                let word = BufferedSystemRandom.next()
                for shift in stride(from: 0, to: 64, by: 8) {
                    let byte = UInt8(truncatingIfNeeded: word >> UInt64(shift))
                    hex += [digits[Int(byte >> 4)], digits[Int(byte & 15)]]
                }
            }
            hex.append(0x0A)
            let written = hex.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            let synced = fsync(fd)
            close(fd)
            guard written == hex.count, synced == 0 else {
                unlink(path)
                throw KeyError(path: path, reason: "cannot be written: \(String(cString: strerror(errno)))")
            }
            return Array(hex.dropLast())
        }
        guard errno == EEXIST else {
            throw KeyError(path: path, reason: "cannot be created: \(String(cString: strerror(errno)))")
        }
        let key = try read(path)
        guard key.count >= CraftAccessTokens.minimumKeyBytes else {
            throw KeyError(
                path: path, reason: "holds \(key.count) bytes; at least 32 are needed (delete it to regenerate)")
        }
        return key
    }

    package struct KeyError: Error, CustomStringConvertible {
        package var path: String
        package var reason: String
        package var description: String { "Craft AI access-token key \(path) \(reason)" }
    }

    private static func read(_ path: String) throws(KeyError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw KeyError(path: path, reason: "cannot be read: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { throw KeyError(path: path, reason: "cannot be read: \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            bytes += chunk[0..<n]
            guard bytes.count <= 1 << 16 else { throw KeyError(path: path, reason: "is larger than 64 KiB") }
        }
        while let last = bytes.last, last == 0x0A || last == 0x0D { bytes.removeLast() }
        return bytes
    }
}
