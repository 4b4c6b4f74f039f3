import CTriggerProtos
package import NIOCore
import TriggerModel

/// The requester lookups of `core.mgmt.v1beta.MgmtPublicService` the Instill SDK makes when given a
/// `requester_id` (CLIENTS.md §2.2): `CheckNamespace`, then `GetUser` or `GetOrganization`.
///
/// Decoders are total: malformed bytes are `GatewayError(.invalidArgument)`, as is a missing id.
package enum MgmtCodec {
    /// `CheckNamespaceResponse.Namespace`.
    package enum NamespaceType: Int32, Sendable {
        case available = 1
        case user = 2
        case organization = 3
    }

    /// A user or an organization as `GetUser` / `GetOrganization` answer it: `name` (`users/{id}` or
    /// `organizations/{id}`), `uid`, `id`.
    package struct Profile: Sendable, Equatable {
        package var name: String
        package var uid: String
        package var id: String

        package init(name: String, uid: String, id: String) {
            self.name = name
            self.uid = uid
            self.id = id
        }
    }

    /// The `id` of a `CheckNamespaceRequest`.
    package static func decodeCheckNamespaceRequest(_ bytes: ByteBuffer) throws -> String {
        try ProtoMessage.withUnpacked(
            bytes,
            as: "CheckNamespaceRequest",
            unpack: core__mgmt__v1beta__check_namespace_request__unpack,
            free: core__mgmt__v1beta__check_namespace_request__free_unpacked
        ) { m in try required(m.pointee.id, "id") }
    }

    package static func encodeCheckNamespaceResponse(_ type: NamespaceType) -> ByteBuffer {
        withProtoArena { arena in
            let m: UnsafeMutablePointer<Core__Mgmt__V1beta__CheckNamespaceResponse> =
                arena.message(core__mgmt__v1beta__check_namespace_response__init)
            m.pointee.type = Core__Mgmt__V1beta__CheckNamespaceResponse__Namespace(
                rawValue: numericCast(type.rawValue))
            return ProtoMessage.pack(m)
        }
    }

    /// The `user_id` of a `GetUserRequest` (`me` is the caller, as Instill reads it; the frontend resolves it).
    package static func decodeGetUserRequest(_ bytes: ByteBuffer) throws -> String {
        try ProtoMessage.withUnpacked(
            bytes,
            as: "GetUserRequest",
            unpack: core__mgmt__v1beta__get_user_request__unpack,
            free: core__mgmt__v1beta__get_user_request__free_unpacked
        ) { m in try required(m.pointee.user_id, "user_id") }
    }

    /// The `organization_id` of a `GetOrganizationRequest`.
    package static func decodeGetOrganizationRequest(_ bytes: ByteBuffer) throws -> String {
        try ProtoMessage.withUnpacked(
            bytes,
            as: "GetOrganizationRequest",
            unpack: core__mgmt__v1beta__get_organization_request__unpack,
            free: core__mgmt__v1beta__get_organization_request__free_unpacked
        ) { m in try required(m.pointee.organization_id, "organization_id") }
    }

    /// `GetUserResponse{user = 1}`.
    package static func encodeGetUserResponse(_ user: Profile) -> ByteBuffer {
        withProtoArena { arena in
            let u: UnsafeMutablePointer<Core__Mgmt__V1beta__User> = arena.message(core__mgmt__v1beta__user__init)
            u.pointee.name = arena.cString(user.name)
            u.pointee.uid = arena.cString(user.uid)
            u.pointee.id = arena.cString(user.id)
            let m: UnsafeMutablePointer<Core__Mgmt__V1beta__GetUserResponse> =
                arena.message(core__mgmt__v1beta__get_user_response__init)
            m.pointee.user = u
            return ProtoMessage.pack(m)
        }
    }

    /// `GetOrganizationResponse{organization = 1}`.
    package static func encodeGetOrganizationResponse(_ organization: Profile) -> ByteBuffer {
        withProtoArena { arena in
            let o: UnsafeMutablePointer<Core__Mgmt__V1beta__Organization> =
                arena.message(core__mgmt__v1beta__organization__init)
            o.pointee.name = arena.cString(organization.name)
            o.pointee.uid = arena.cString(organization.uid)
            o.pointee.id = arena.cString(organization.id)
            let m: UnsafeMutablePointer<Core__Mgmt__V1beta__GetOrganizationResponse> =
                arena.message(core__mgmt__v1beta__get_organization_response__init)
            m.pointee.organization = o
            return ProtoMessage.pack(m)
        }
    }

    private static func required(_ field: UnsafeMutablePointer<CChar>?, _ name: String) throws -> String {
        let value = StructCodec.string(field)
        guard !value.isEmpty else { throw GatewayError(.invalidArgument, "\(name) is required") }
        return value
    }
}
