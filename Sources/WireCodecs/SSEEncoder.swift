package import NIOCore
package import TriggerModel

/// Renders `TriggerEvent`s as Server-Sent Events (API.md §2): one `event:`/`data:` block per event, the data a
/// single line of JSON.
///
/// - `.status(name, data)`: `event: <name>` (default `PIPELINE_STATUS_UPDATED`), data the object.
/// - `.output(name, outputs)`: `event: <name>` (default `PIPELINE_OUTPUT_UPDATED`), data `{"outputs":[...]}`.
/// - `.error(e)`: `event: PIPELINE_ERROR_UPDATED`, data the REST error body.
/// - `.end(result)`: `event: PIPELINE_OUTPUT_UPDATED`, data the full sync response
///   `{"outputs":[...],"metadata":{...}}`. A client that reads a whole stream thus ends with the same body a sync
///   trigger gives, and the `metadata` member is what tells the final output apart from partial ones
///   (see `SSEDecoder.triggerEvent`). Nothing follows it.
package enum SSEEncoder {
    package static let statusEvent = "PIPELINE_STATUS_UPDATED"
    package static let outputEvent = "PIPELINE_OUTPUT_UPDATED"
    package static let errorEvent = "PIPELINE_ERROR_UPDATED"

    /// The response headers an SSE stream needs.
    package static let contentType = "text/event-stream"

    /// Appends one event block, ending with the blank line that dispatches it.
    package static func encode(_ event: TriggerEvent, into buffer: inout ByteBuffer) {
        switch event {
        case .status(let name, let data):
            writeHeader(name.isEmpty ? statusEvent : name, into: &buffer)
            JSONValueCodec.write(data, into: &buffer)
        case .output(let name, let result):
            writeHeader(name.isEmpty ? outputEvent : name, into: &buffer)
            // The runner's event data when it is this text already (`SSEDecoder.triggerEvent`, issue 11).
            if let json = result.restOutputsJSON {
                buffer.writeImmutableBuffer(json)
            } else {
                buffer.writeStaticString("{\"outputs\":")
                RESTResponseBody.writeObjects(result.outputs, into: &buffer)
                buffer.writeInteger(UInt8(ascii: "}"))
            }
        case .error(let error):
            writeHeader(errorEvent, into: &buffer)
            RESTResponseBody.encode(error: error, into: &buffer)
        case .end(let result):
            writeHeader(outputEvent, into: &buffer)
            RESTResponseBody.encode(result: result, into: &buffer)
        }
        buffer.writeStaticString("\n\n")
    }

    private static func writeHeader(_ name: String, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("event: ")
        // A line break in the name would end the field early and corrupt the stream. (Over the contiguous bytes:
        // `utf8.contains(where:)` cost ~35 instructions a byte, issue 11.)
        let breaksLine = name.withUTF8Bytes { bytes in bytes.contains { $0 == 0x0A || $0 == 0x0D } }
        if breaksLine {
            buffer.writeString(String(name.map { $0.isNewline ? " " : $0 }))
        } else {
            buffer.writeString(name)
        }
        buffer.writeStaticString("\ndata: ")
    }
}
