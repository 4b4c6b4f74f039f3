import CraftSurface
import Foundation
import Synchronization
import Testing

/// A clock tests move by hand.
final class ManualClock: Sendable {
    private let seconds: Mutex<Double>
    init(_ start: Double) { seconds = Mutex(start) }
    func advance(_ by: Double) { seconds.withLock { $0 += by } }
    var now: Date { Date(timeIntervalSince1970: seconds.withLock { $0 }) }
}

@Suite("Craft AI access tokens (HS256 JWT)")
struct CraftAccessTokensTests {
    let key = Array("0123456789abcdef0123456789abcdef".utf8)

    /// The claims, decoded without checking the signature (as the SDK does).
    func claims(_ token: String) throws -> [String: Any] {
        var part = String(token.split(separator: ".")[1])
        part = part.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while part.count % 4 != 0 { part += "=" }
        return try JSONSerialization.jsonObject(with: Data(base64Encoded: part)!) as! [String: Any]
    }

    /// HMAC-SHA256 of `message` with `key`, computed by openssl (apart from the code under test).
    func hmac(_ message: String) throws -> Data {
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = ["dgst", "-sha256", "-hmac", String(decoding: key, as: UTF8.self), "-binary"]
        let stdin = Pipe()
        let stdout = Pipe()
        openssl.standardInput = stdin
        openssl.standardOutput = stdout
        try openssl.run()
        stdin.fileHandleForWriting.write(Data(message.utf8))
        try stdin.fileHandleForWriting.close()
        let mac = stdout.fileHandleForReading.readDataToEndOfFile()
        openssl.waitUntilExit()
        try #require(mac.count == 32)
        return mac
    }

    /// A token with this header and these claims, HS256-signed with `key` (openssl computes the HMAC), each
    /// part base64url; `padded` keeps the `=` padding RFC 7515 §2 leaves out.
    func signed(header: String, claims: String, padded: Bool = false) throws -> String {
        func encode(_ data: Data) -> String {
            let text = data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(
                of: "/", with: "_")
            return padded ? text : text.replacingOccurrences(of: "=", with: "")
        }
        let input = "\(encode(Data(header.utf8))).\(encode(Data(claims.utf8)))"
        let mac = try hmac(input)
        return "\(input).\(encode(mac))"
    }

    @Test("alg: only HS256 is taken, even for a token HMAC-signed with the real key (RFC 8725 §3.1)")
    func algorithmChecked() async throws {
        let clock = ManualClock(1_000_000)
        let tokens = CraftAccessTokens(key: key, lifetime: .seconds(600), now: { clock.now })
        let claims = #"{"sub":"alice","iat":1000000,"exp":1000600}"#
        #expect(
            try tokens.verify(try signed(header: #"{"alg":"HS256","typ":"JWT"}"#, claims: claims)).subject
                == "alice")
        for alg in ["RS256", "HS512", "hs256", "none"] {
            let token = try signed(header: #"{"alg":"\#(alg)","typ":"JWT"}"#, claims: claims)
            #expect(throws: CraftAccessTokens.Failure.malformed, "\(alg)") { try tokens.verify(token) }
        }
        let noAlg = try signed(header: #"{"typ":"JWT"}"#, claims: claims)
        #expect(throws: CraftAccessTokens.Failure.malformed) { try tokens.verify(noAlg) }
    }

    @Test("base64url with = padding is refused (RFC 7515 §2); the same token unpadded is taken")
    func paddingRefused() async throws {
        let clock = ManualClock(1_000_000)
        let tokens = CraftAccessTokens(key: key, lifetime: .seconds(600), now: { clock.now })
        // 44 bytes of claims (JSON allows the trailing space) and a 32-byte MAC: base64 pads each with one `=`.
        let claims = #"{"sub":"alice","iat":1000000,"exp":1000600} "#
        let header = #"{"alg":"HS256","typ":"JWT"}"#
        let padded = try signed(header: header, claims: claims, padded: true)
        #expect(padded.contains("="))
        #expect(throws: CraftAccessTokens.Failure.malformed) { try tokens.verify(padded) }
        #expect(try tokens.verify(try signed(header: header, claims: claims)).subject == "alice")
    }

    @Test("nbf: accepted within the leeway, refused just past it, as iat")
    func notBefore() async throws {
        let clock = ManualClock(2_000_000)
        let tokens = CraftAccessTokens(key: key, lifetime: .seconds(600), leeway: .seconds(60), now: { clock.now })
        let header = #"{"alg":"HS256","typ":"JWT"}"#
        func token(nbf: Int) throws -> String {
            try signed(header: header, claims: #"{"sub":"s","iat":2000000,"exp":2000600,"nbf":\#(nbf)}"#)
        }
        #expect(try tokens.verify(try token(nbf: 2_000_060)).subject == "s")  // nbf == now + 60: at the leeway
        let early = try token(nbf: 2_000_061)
        #expect(throws: CraftAccessTokens.Failure.notYetValid) { try tokens.verify(early) }
        clock.advance(1)
        #expect(try tokens.verify(early).subject == "s")
    }

    @Test("issued tokens carry sub and numeric iat/exp one lifetime apart, and verify to their subject")
    func roundTrip() async throws {
        let clock = ManualClock(1_700_000_000.7)
        let tokens = CraftAccessTokens(key: key, lifetime: .seconds(3600), now: { clock.now })
        let token = try await tokens.issue(subject: "alice")
        let c = try claims(token)
        #expect(c["sub"] as? String == "alice")
        #expect(c["iat"] as? Int == 1_700_000_000)
        #expect(c["exp"] as? Int == 1_700_003_600)
        #expect(try tokens.verify(token).subject == "alice")
    }

    @Test("tkb: the SDK token's binding is keyed, 16 bytes of unpadded base64url, and comes back from verify")
    func sdkTokenBinding() async throws {
        let tokens = CraftAccessTokens(key: key, lifetime: .seconds(600))
        let binding = tokens.binding(ofSDKToken: "ALICE")
        // HMAC-SHA256(key, "craft-sdk-token:ALICE")'s first 16 bytes as unpadded base64url.
        let expected = try hmac("craft-sdk-token:ALICE").prefix(16).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        #expect(binding == expected)
        #expect(binding.count == 22)
        #expect(binding != tokens.binding(ofSDKToken: "ALICE2"))
        #expect(
            binding
                != CraftAccessTokens(key: Array("another key, 32 bytes or longer!!".utf8), lifetime: .seconds(600))
                .binding(ofSDKToken: "ALICE"))

        let bound = try await tokens.issue(subject: "alice", sdkTokenBinding: binding)
        #expect(try claims(bound)["tkb"] as? String == binding)
        #expect(try tokens.verify(bound) == .init(subject: "alice", sdkTokenBinding: binding))
        let unbound = try await tokens.issue(subject: "alice")
        #expect(try claims(unbound)["tkb"] == nil)
        #expect(try tokens.verify(unbound) == .init(subject: "alice"))
    }

    @Test("expiry: valid one second before exp, refused at exp (RFC 7519 §4.1.4: on or after)")
    func expiryEdge() async throws {
        let clock = ManualClock(1_000_000)
        let tokens = CraftAccessTokens(key: key, lifetime: .seconds(200), now: { clock.now })
        let token = try await tokens.issue(subject: "s")
        clock.advance(199)
        #expect(try tokens.verify(token).subject == "s")
        clock.advance(1)
        #expect(throws: CraftAccessTokens.Failure.expired) { try tokens.verify(token) }
    }

    @Test("iat in the future: accepted within the leeway, refused just past it")
    func futureIssuedAt() async throws {
        let issuer = ManualClock(2_000_060)
        let verifierClock = ManualClock(2_000_000)
        let issuing = CraftAccessTokens(key: key, lifetime: .seconds(600), now: { issuer.now })
        let verifying = CraftAccessTokens(
            key: key, lifetime: .seconds(600), leeway: .seconds(60), now: { verifierClock.now })
        let token = try await issuing.issue(subject: "s")
        #expect(try verifying.verify(token).subject == "s")  // iat == now + 60: at the leeway
        let later = ManualClock(2_000_061)
        let token2 = try await CraftAccessTokens(key: key, lifetime: .seconds(600), now: { later.now }).issue(
            subject: "s")
        #expect(throws: CraftAccessTokens.Failure.notYetValid) { try verifying.verify(token2) }
    }

    @Test("another key's token, a tampered payload, alg none and garbage are refused")
    func forgeries() async throws {
        let tokens = CraftAccessTokens(key: key, lifetime: .seconds(600))
        let other = CraftAccessTokens(key: Array("another key, 32 bytes or longer!!".utf8), lifetime: .seconds(600))
        let foreign = try await other.issue(subject: "mallory")
        #expect(throws: CraftAccessTokens.Failure.badSignature) { try tokens.verify(foreign) }

        let genuine = try await tokens.issue(subject: "alice")
        let parts = genuine.split(separator: ".").map(String.init)
        let payload = Data(#"{"sub":"root","iat":1,"exp":99999999999}"#.utf8).base64EncodedString()
            .replacingOccurrences(of: "=", with: "").replacingOccurrences(of: "+", with: "-").replacingOccurrences(
                of: "/", with: "_")
        #expect(throws: CraftAccessTokens.Failure.badSignature) {
            try tokens.verify("\(parts[0]).\(payload).\(parts[2])")
        }
        let none = Data(#"{"alg":"none","typ":"JWT"}"#.utf8).base64EncodedString().replacingOccurrences(
            of: "=", with: "")
        #expect(throws: CraftAccessTokens.Failure.self) { try tokens.verify("\(none).\(payload).") }
        #expect(throws: CraftAccessTokens.Failure.malformed) { try tokens.verify("not-a-jwt") }
    }

    @Test("the signing key: generated once (0600) and read back; a configured file is used as is; short keys refused")
    func signingKey() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("craft-key-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try CraftSigningKey.load(secretFile: nil, dataDir: dir)
        #expect(first.count == 64)
        #expect(try CraftSigningKey.load(secretFile: nil, dataDir: dir) == first)
        let attributes = try FileManager.default.attributesOfItem(atPath: "\(dir)/craft-jwt.key")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)

        let file = "\(dir)/configured"
        try Data((String(repeating: "s", count: 32) + "\n").utf8).write(to: URL(fileURLWithPath: file))
        #expect(
            try CraftSigningKey.load(secretFile: file, dataDir: dir) == Array(String(repeating: "s", count: 32).utf8))
        try Data(String(repeating: "s", count: 31).utf8).write(to: URL(fileURLWithPath: file))
        #expect(throws: CraftSigningKey.KeyError.self) { try CraftSigningKey.load(secretFile: file, dataDir: dir) }
        #expect(throws: CraftSigningKey.KeyError.self) {
            try CraftSigningKey.load(secretFile: "\(dir)/missing", dataDir: dir)
        }
    }
}
