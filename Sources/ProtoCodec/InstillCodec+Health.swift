import CTriggerProtos
package import NIOCore

extension InstillCodec {
    /// The answer to `Readiness` and `Liveness` of `pipeline.pipeline.v1beta.PipelinePublicService` and
    /// `core.mgmt.v1beta.MgmtPublicService`: all four responses are `health_check_response = 1` holding a
    /// `common.healthcheck.v1beta.HealthCheckResponse`, so one encoding serves them all.
    package static func encodeHealthCheckResponse(serving: Bool) -> ByteBuffer {
        withProtoArena { arena in
            let inner: UnsafeMutablePointer<Common__Healthcheck__V1beta__HealthCheckResponse> =
                arena.message(common__healthcheck__v1beta__health_check_response__init)
            inner.pointee.status =
                serving
                ? COMMON__HEALTHCHECK__V1BETA__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING_STATUS_SERVING
                : COMMON__HEALTHCHECK__V1BETA__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING_STATUS_NOT_SERVING
            let m: UnsafeMutablePointer<Pipeline__Pipeline__V1beta__ReadinessResponse> =
                arena.message(pipeline__pipeline__v1beta__readiness_response__init)
            m.pointee.health_check_response = inner
            return ProtoMessage.pack(m)
        }
    }

    /// The service named in a Readiness/Liveness request, nil when absent. Tolerant: the answer does not
    /// depend on it, so undecodable bytes read as nil instead of failing the health check.
    package static func decodeHealthCheckRequest(_ bytes: ByteBuffer) -> String? {
        try? ProtoMessage.withUnpacked(
            bytes,
            as: "ReadinessRequest",
            unpack: pipeline__pipeline__v1beta__readiness_request__unpack,
            free: pipeline__pipeline__v1beta__readiness_request__free_unpacked
        ) { m -> String? in
            guard let inner = m.pointee.health_check_request else { return nil }
            let service = StructCodec.string(inner.pointee.service)
            return service.isEmpty ? nil : service
        }
    }

    /// `grpc.health.v1.HealthCheckResponse.ServingStatus`, without the C enum.
    package enum GRPCServingStatus: Sendable {
        case serving
        case notServing
        /// Only in `Health/Watch`, for a service the server does not know.
        case serviceUnknown
    }

    /// `grpc.health.v1.HealthCheckResponse` for `Health/Check` (and each `Health/Watch` message).
    package static func encodeGRPCHealthResponse(serving: Bool) -> ByteBuffer {
        encodeGRPCHealthResponse(status: serving ? .serving : .notServing)
    }

    package static func encodeGRPCHealthResponse(status: GRPCServingStatus) -> ByteBuffer {
        withProtoArena { arena in
            let m: UnsafeMutablePointer<Grpc__Health__V1__HealthCheckResponse> =
                arena.message(grpc__health__v1__health_check_response__init)
            m.pointee.status =
                switch status {
                case .serving: GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                case .notServing: GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
                case .serviceUnknown: GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN
                }
            return ProtoMessage.pack(m)
        }
    }

    /// The `service` of a `grpc.health.v1.HealthCheckRequest` ("" means the whole server). Tolerant as above.
    package static func decodeGRPCHealthRequest(_ bytes: ByteBuffer) -> String {
        (try? ProtoMessage.withUnpacked(
            bytes,
            as: "grpc.health.v1.HealthCheckRequest",
            unpack: grpc__health__v1__health_check_request__unpack,
            free: grpc__health__v1__health_check_request__free_unpacked
        ) { StructCodec.string($0.pointee.service) }) ?? ""
    }

    /// Whether a `grpc.health.v1.HealthCheckResponse` says SERVING (a pool's active health check reads it);
    /// undecodable bytes are not serving.
    package static func decodeGRPCHealthServing(_ bytes: ByteBuffer) -> Bool {
        (try? ProtoMessage.withUnpacked(
            bytes,
            as: "grpc.health.v1.HealthCheckResponse",
            unpack: grpc__health__v1__health_check_response__unpack,
            free: grpc__health__v1__health_check_response__free_unpacked
        ) { $0.pointee.status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING }) ?? false
    }
}
