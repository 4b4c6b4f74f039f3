package import FoundationEssentials
package import GatewayConfig
import Routing
import Synchronization
package import TriggerModel

/// Everything the Craft AI surface needs that is not HTTP: its configuration, the access-token signer, the
/// principals a token may name, and pipeline descriptions. Built with each configuration
/// generation, so a reload (SIGHUP) swaps it whole.
package final class CraftSurface: Sendable {
    package let configuration: CraftConfiguration
    package let accessTokens: CraftAccessTokens
    /// Whether the gateway requires tokens; when it does, an access token's subject must still be one of
    /// `principals` and the SDK token it was issued for still configured for it (a token removed or given a
    /// new value by a reload stops working at once, not when its JWTs expire).
    package let authRequired: Bool
    package let principals: Set<String>
    /// ``CraftAccessTokens/binding(ofSDKToken:)`` of each configured token's value → its principal.
    private let sdkTokenPrincipals: [String: String]
    package let descriptions: CraftDescriptions
    /// When this configuration was loaded (at start, or by the reload that built this surface): the
    /// `created_at` / `updated_at` of what the configuration defines (pipelines, deployments), which have no
    /// creation time of their own (review 59, F9: the SDK sorts lists by `created_at`).
    package let loadedAt: Date
    /// The keys ``isFirstReport(_:)`` has seen: one per configured deployment and output at most.
    private let reported = Mutex<Set<String>>([])

    /// - Parameters:
    ///   - key: the access-token key (see `CraftSigningKey.load`).
    ///   - describe: asks the runner of a pipeline for its description (`TriggerDispatcher.pipelineDescription`:
    ///     the `Describe` call, a runner that cannot describe answering an empty description).
    package init(
        configuration: CraftConfiguration,
        key: [UInt8],
        authRequired: Bool,
        tokens: [TokenConfiguration],
        describe: @escaping @Sendable (PipelineRef) async throws -> PipelineDescription,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.configuration = configuration
        self.accessTokens = CraftAccessTokens(key: key, lifetime: configuration.accessTokenLifetime, now: now)
        self.authRequired = authRequired
        self.principals = Set(tokens.map(\.name))
        var bindings: [String: String] = [:]
        for token in tokens { bindings[accessTokens.binding(ofSDKToken: token.token)] = token.name }
        self.sdkTokenPrincipals = bindings
        self.descriptions = CraftDescriptions(configuration: configuration, describe: describe)
        self.loadedAt = now()
    }

    /// True the first time `key` is asked about in this configuration's life: what is logged once per
    /// configuration (a reload logs it again, with the configuration it checks anew).
    package func isFirstReport(_ key: String) -> Bool {
        reported.withLock { $0.insert(key).inserted }
    }

    /// The route of pipeline `name` in the surface's namespace.
    package func ref(pipeline name: String, release: String? = nil) -> PipelineRef {
        PipelineRef(namespace: configuration.namespace, pipeline: name, release: release)
    }

    /// The principal an access token stands for. With auth off the token is still verified but names no one:
    /// the principal is then `connectionPrincipal`, the one the connection's client certificate names (nil
    /// without one), as on the Instill and Abacus paths, so a certificate holder's executions stay its own.
    ///
    /// - Throws: `GatewayError(.unauthenticated)` for a missing, malformed, forged or expired token, or one
    ///   whose principal or SDK token is no longer configured. A token without `tkb` (issued by a gateway
    ///   older than the claim, during a rolling upgrade) is checked by its principal alone.
    package func principal(
        authorization: String?, connectionPrincipal: String?
    ) throws(GatewayError) -> String? {
        let token = try Self.accessToken(in: authorization)
        let grant: CraftAccessTokens.Grant
        do {
            grant = try accessTokens.verify(token)
        } catch {
            throw GatewayError(.unauthenticated, error.description)
        }
        guard authRequired else { return connectionPrincipal }
        guard principals.contains(grant.subject) else {
            throw GatewayError(.unauthenticated, "the access token's principal is no longer configured; refresh it")
        }
        if let binding = grant.sdkTokenBinding, sdkTokenPrincipals[binding] != grant.subject {
            throw GatewayError(
                .unauthenticated,
                "the SDK token this access token was issued for is no longer configured; refresh with the current one")
        }
        return grant.subject
    }

    /// The refusal of a request whose `Authorization` holds no access token ``principal(authorization:connectionPrincipal:)``
    /// takes (the whole check: signature, expiry, and the principal and SDK token still configured), nil when it
    /// holds one: asked at a request's head, so that a body is read only for a caller with a valid token
    /// (security review 60, H1: bodies of up to 32 MiB were gathered before the token was looked at; diff review
    /// 60, M-2: the signature alone let expired and revoked tokens' bodies be read).
    package func refusalBeforeBody(authorization: String?) -> GatewayError? {
        do {
            _ = try principal(authorization: authorization, connectionPrincipal: nil)
            return nil
        } catch {
            return error
        }
    }

    /// The token of `Authorization: Bearer <token>`, spaces and tabs around it dropped.
    /// - Throws: `GatewayError(.unauthenticated)` when the header is missing or of another scheme.
    private static func accessToken(in authorization: String?) throws(GatewayError) -> String {
        guard let authorization else {
            throw GatewayError(
                .unauthenticated, "missing Authorization: Bearer <access token>; get one from /api/v1/auth/refresh")
        }
        guard let token = TokenAuthenticator.credential(in: authorization, scheme: "bearer") else {
            throw GatewayError(.unauthenticated, "the Authorization header must be Bearer <access token>")
        }
        return token
    }

    /// The cap of a deployment (its own, else the surface's).
    package func ioCap(for deployment: CraftDeploymentConfiguration?) -> CraftIOCap {
        CraftIOCap(limit: deployment?.maxIOBytes ?? configuration.maxIOBytes)
    }
}

/// Pipeline descriptions: the ones `craft.pipelines` configures, else the runner's answer (through `describe`,
/// `TriggerDispatcher.pipelineDescription`, which keeps answers a few seconds for every surface alike).
///
/// A runner that cannot describe (it answers UNIMPLEMENTED, as runners written before the call existed do)
/// describes every pipeline as taking any inputs: `describe` answers so.
package struct CraftDescriptions: Sendable {
    private let configured: [String: PipelineDescription]
    private let describe: @Sendable (PipelineRef) async throws -> PipelineDescription

    package init(
        configuration: CraftConfiguration,
        describe: @escaping @Sendable (PipelineRef) async throws -> PipelineDescription
    ) {
        var configured: [String: PipelineDescription] = [:]
        for pipeline in configuration.pipelines {
            configured[pipeline.name] = PipelineDescription(
                inputs: pipeline.inputs.map { .init(name: $0.name, dataType: $0.dataType) },
                outputs: pipeline.outputs.map { .init(name: $0.name, dataType: $0.dataType) }
            )
        }
        self.configured = configured
        self.describe = describe
    }

    /// The description of `ref`. Throws what the runner throws (`.notFound` for a pipeline it lacks).
    package func description(of ref: PipelineRef) async throws -> PipelineDescription {
        if let configured = configured[ref.pipeline] { return configured }
        return try await describe(ref)
    }
}
