package import NIOCore
package import TriggerModel
import WireCodecs

/// The body of every Abacus answer (CLIENTS.md §4.2): `{"success": true, "result": <result>}`, or
/// `{"success": false, "error": "<message>", "errorType": "<class name>", "requestId": "<id>"}`.
///
/// The client reads `requestId` from the body (else from the `x-request-id` header) and appends it to the
/// exception's message, so an operator can find the request in the gateway's log.
package enum AbacusEnvelope {
    /// `{"success":true,"result":<result>}`.
    package static func success(_ result: Value) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: 256)
        buffer.writeStaticString("{\"success\":true,\"result\":")
        JSONValueCodec.write(result, into: &buffer)
        buffer.writeInteger(UInt8(ascii: "}"))
        return buffer
    }

    /// `{"success":false,"error":...,"errorType":...,"requestId":...}`.
    package static func failure(_ error: AbacusError, requestID: String) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: 96 + error.message.utf8.count)
        buffer.writeStaticString("{\"success\":false,\"error\":")
        JSONValueCodec.writeString(error.message, into: &buffer)
        buffer.writeStaticString(",\"errorType\":")
        JSONValueCodec.writeString(error.type.rawValue, into: &buffer)
        buffer.writeStaticString(",\"requestId\":")
        JSONValueCodec.writeString(requestID, into: &buffer)
        buffer.writeInteger(UInt8(ascii: "}"))
        return buffer
    }
}
