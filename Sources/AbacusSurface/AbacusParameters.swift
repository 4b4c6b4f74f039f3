package import NIOCore
package import TriggerModel
package import WireCodecs

/// The parameters of one Abacus call: the JSON body's keys (POST) and the query string's (GET, as the client
/// sends `describePipelineVersion?pipelineVersion=...`). A key in the body wins over the same key in the
/// query. Query values are text; the readers below convert them (`limit=5` is the integer 5), and a query
/// value read as JSON (`pipelineVariableMappings`) is parsed, since the client JSON-encodes lists and
/// objects it puts into a GET's query.
package struct AbacusParameters: Sendable {
    private let body: ValueObject
    private let query: @Sendable (String) -> String?
    private let limits: CodecLimits

    /// `body`: the request body, empty or a JSON object (anything else is an `InvalidParameterError`).
    package init(body: ByteBuffer?, query: @escaping @Sendable (String) -> String?, limits: CodecLimits)
        throws(AbacusError)
    {
        self.query = query
        self.limits = limits
        guard let body, body.readableBytes > 0 else {
            self.body = ValueObject()
            return
        }
        do {
            self.body = try JSONValueCodec.decodeObject(body, limits: limits, what: "the request body")
        } catch let error as GatewayError {
            throw AbacusError.invalidParameter(error.message)
        } catch {
            throw AbacusError.invalidParameter("the request body is not a JSON object")
        }
    }

    /// The parameter as sent; null counts as absent.
    package func value(_ name: String) throws(AbacusError) -> Value? {
        if let value = body[name] { return value == .null ? nil : value }
        guard let text = query(name) else { return nil }
        do {
            let value = try JSONValueCodec.decode(ByteBuffer(string: text), limits: limits, path: name)
            return value == .null ? nil : value
        } catch {
            throw .invalidParameter("\(name) in the query string is not JSON: \(text.prefix(80))")
        }
    }

    /// A string parameter; nil when absent.
    package func string(_ name: String) throws(AbacusError) -> String? {
        if let value = body[name] {
            switch value {
            case .null: return nil
            case .string(let text): return text
            default: throw .invalidParameter("\(name) must be a string, got \(AbacusVariableMappings.describe(value))")
            }
        }
        return query(name)
    }

    /// A string parameter that must be there and not empty (`MissingParameterError` otherwise).
    package func requiredString(_ name: String) throws(AbacusError) -> String {
        guard let text = try string(name), !text.isEmpty else { throw .missingParameter("\(name) is required") }
        return text
    }

    /// A non-negative integer parameter (a JSON number, or digits in a string or the query); nil when absent.
    package func count(_ name: String) throws(AbacusError) -> Int? {
        let number: Double?
        if let value = body[name] {
            switch value {
            case .null: return nil
            case .number(let n): number = n
            case .string(let text): number = Int(text).map(Double.init)
            default: number = nil
            }
        } else if let text = query(name) {
            number = Int(text).map(Double.init)
        } else {
            return nil
        }
        // Up to 2^53, the integers a JSON number holds exactly (as for INTEGER variables); what a count means
        // beyond that (a page size, say) is for the caller to cap.
        guard let number, number >= 0, number.rounded(.towardZero) == number,
            number <= AbacusVariableMappings.maxExactInteger
        else {
            throw .invalidParameter("\(name) must be an integer from 0 to 2^53")
        }
        return Int(number)
    }
}
