import GatewayConfig
import HTTP2Engine
import NIOCore
import ProtoCodec
import Routing
import TriggerModel

/// The requester lookups of `core.mgmt.v1beta.MgmtPublicService` (CLIENTS.md §2.2), answered from the
/// namespaces the gateway knows (`NamespaceDirectory`):
///
/// - `CheckNamespace{id}`: `NAMESPACE_USER` or `NAMESPACE_ORGANIZATION` for a known namespace, else
///   `NAMESPACE_AVAILABLE` (what Instill answers for an id nobody holds);
/// - `GetUser{user_id}` / `GetOrganization{organization_id}`: `{name, uid, id}` of that user or organization,
///   NOT_FOUND for an unknown id or one of the other kind. `GetUser{user_id: "me"}` is the caller's principal
///   (NOT_FOUND when auth is off: there is none).
///
/// These are lookups, not actions: whether the principal may act for the namespace is checked where the uid
/// comes back, as `instill-requester-uid` on later calls (PERMISSION_DENIED).
extension HTTP2FrontendConnection {
    func grpcMgmt(_ message: ByteBuffer, call: GRPCCall, stream: HTTP2StreamID) {
        let namespaces = services.namespaces
        do {
            let answer: ByteBuffer
            switch call.method {
            case .checkNamespace:
                let id = try MgmtCodec.decodeCheckNamespaceRequest(message)
                let type: MgmtCodec.NamespaceType =
                    switch namespaces.namespace(id: id)?.kind {
                    case .user: .user
                    case .organization: .organization
                    case nil: .available
                    }
                answer = MgmtCodec.encodeCheckNamespaceResponse(type)
            case .getUser:
                var id = try MgmtCodec.decodeGetUserRequest(message)
                if id == "me" {
                    guard let principal = call.context.principal else {
                        throw GatewayError(.notFound, "user \"me\" not found: auth is off, there is no principal")
                    }
                    id = principal
                }
                answer = MgmtCodec.encodeGetUserResponse(try profile(namespaces, id, .user))
            case .getOrganization:
                let id = try MgmtCodec.decodeGetOrganizationRequest(message)
                answer = MgmtCodec.encodeGetOrganizationResponse(try profile(namespaces, id, .organization))
            default:
                preconditionFailure("grpcMgmt is called for the mgmt lookups only")
            }
            grpcRespond(stream, message: answer)
        } catch {
            grpcFinish(stream, error: gatewayError(from: error))
        }
    }

    private func profile(
        _ namespaces: NamespaceDirectory, _ id: String, _ kind: NamespaceConfiguration.Kind
    ) throws -> MgmtCodec.Profile {
        guard let namespace = namespaces.namespace(id: id), namespace.kind == kind else {
            throw GatewayError(.notFound, "\(kind.rawValue) \"\(id)\" not found")
        }
        return MgmtCodec.Profile(name: namespace.name, uid: namespace.uid, id: namespace.id)
    }
}
