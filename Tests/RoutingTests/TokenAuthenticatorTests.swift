import GatewayConfig
import Routing
import Testing
import TriggerModel

@Suite("TokenAuthenticator")
struct TokenAuthenticatorTests {
    static let auth = TokenAuthenticator(
        tokens: [(name: "alice", token: "s3cret"), (name: "bob", token: "s3cret-longer"), (name: "carol", token: "x")],
        authRequired: true
    )

    @Test(
        "accepted forms name the principal",
        arguments: [
            ("Bearer s3cret", "alice"),
            ("bearer s3cret", "alice"),
            ("BEARER   s3cret  ", "alice"),
            ("s3cret", "alice"),
            ("  s3cret-longer", "bob"),
            ("Bearer x", "carol"),
            ("EndpointToken s3cret-longer", "bob"),
            ("endpointtoken x", "carol"),
            ("x", "carol"),
        ]
    )
    func accepted(header: String, principal: String) throws {
        #expect(try Self.auth.authenticate(authorization: header) == principal)
    }

    @Test(
        "wrong tokens are refused as invalid",
        arguments: [
            "Bearer s3cre", "Bearer s3cret-", "Bearer S3CRET", "s3cret-longe", "Basic czNjcmV0", "Bearer s3cret x",
            "Bearers3cret", "xx", "Bearer\u{0}s3cret",
        ]
    )
    func invalid(header: String) {
        let error = #expect(throws: GatewayError.self) { try Self.auth.authenticate(authorization: header) }
        #expect(error == GatewayError(.unauthenticated, "invalid token"))
    }

    @Test(
        "a missing header or an empty token is refused as missing",
        arguments: [nil, "", "   ", "Bearer", "Bearer  ", "EndpointToken"]
    )
    func missing(header: String?) {
        let error = #expect(throws: GatewayError.self) { try Self.auth.authenticate(authorization: header) }
        #expect(error == GatewayError(.unauthenticated, "missing bearer token"))
        #expect(error?.code.httpStatus == 401)
    }

    @Test(
        "one scheme parser: credential(in:scheme:) reads a scheme case-insensitively, trims spaces and tabs, and answers nil for another scheme",
        arguments: [
            ("Bearer abc", "abc"), ("bearer abc", "abc"), ("BEARER\tabc\t", "abc"), ("  Bearer   abc  ", "abc"),
            ("Bearer", ""), ("Bearer  ", ""), ("Bearerabc", nil), ("Basic dXNlcg==", nil), ("abc", nil), ("", nil),
        ] as [(String, String?)])
    func schemeCredential(header: String, credential: String?) {
        #expect(TokenAuthenticator.credential(in: header, scheme: "bearer") == credential)
    }

    @Test("with auth off every request passes and has no principal")
    func authOff() throws {
        let off = TokenAuthenticator(tokens: [(name: "alice", token: "s3cret")], authRequired: false)
        #expect(try off.authenticate(authorization: nil) == nil)
        #expect(try off.authenticate(authorization: "Bearer wrong") == nil)
        #expect(try off.authenticate(authorization: "Bearer s3cret") == nil)
    }

    @Test("a certificate principal set on a copy is that copy's alone; tokens still decide when required")
    func certificatePrincipalIsAValue() throws {
        let off = TokenAuthenticator(tokens: [(name: "alice", token: "s3cret")], authRequired: false)
        var withCertificate = off
        withCertificate.certificatePrincipal = "CN=client"
        #expect(try withCertificate.authenticate(authorization: nil) == "CN=client")
        #expect(try withCertificate.authenticate(token: nil) == "CN=client")
        #expect(try off.authenticate(authorization: nil) == nil, "the original is unchanged")
        #expect(off.certificatePrincipal == nil)
        var required = Self.auth
        required.certificatePrincipal = "CN=client"
        #expect(required.authRequired)
        #expect(try required.authenticate(authorization: "Bearer s3cret") == "alice")
        #expect(throws: GatewayError(.unauthenticated, "missing bearer token")) {
            try required.authenticate(authorization: nil)
        }
        #expect(Self.auth.certificatePrincipal == nil)
    }

    @Test("a query token (Craft AI's ?token=) is checked the same way")
    func queryToken() throws {
        #expect(try Self.auth.authenticate(token: "s3cret") == "alice")
        #expect(throws: GatewayError(.unauthenticated, "invalid token")) { try Self.auth.authenticate(token: "nope") }
        #expect(throws: GatewayError(.unauthenticated, "missing bearer token")) {
            try Self.auth.authenticate(token: nil)
        }
    }

    @Test("built from config: auth is required only with auth: tokens and at least one token")
    func fromConfiguration() throws {
        #expect(!TokenAuthenticator(configuration: .defaults).authRequired)
        var config = GatewayConfiguration.defaults
        config.tokens = [TokenConfiguration(name: "ci", token: "t0k")]
        let required = TokenAuthenticator(configuration: config)
        #expect(required.authRequired)
        #expect(try required.authenticate(authorization: "Bearer t0k") == "ci")
        config.auth = .none
        #expect(!TokenAuthenticator(configuration: config).authRequired)
    }
}
