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

    /// An integer parameter within `range` (a JSON number, also as the text of a string or the query: Python's
    /// `requests` writes a `float` argument as `2.0`, which the body would take as 2); nil when absent or null. Anything else, out of the range, fractional or not a number at all, is `InvalidParameterError`
    /// with one message, `<name> must be an integer from <lower> to <upper> (it is <what was sent>)`, so a
    /// client learns the whole rule from any mistake (review 17: `limit=-1` and `limit=0` were told two
    /// different ranges).
    package func integer(_ name: String, in range: ClosedRange<Int>) throws(AbacusError) -> Int? {
        let sent: String
        let number: Double?
        if let value = body[name] {
            switch value {
            case .null: return nil
            case .number(let n, _):
                number = n
                sent = n.rounded(.towardZero) == n && abs(n) < 1e15 ? String(Int64(n)) : String(n)
            case .largeInteger(let i):
                number = nil
                sent = i.digits
            case .string(let text):
                number = jsonNumber(text)
                sent = "\"\(text.prefix(40))\""
            default:
                number = nil
                sent = AbacusVariableMappings.describe(value)
            }
        } else if let text = query(name) {
            number = jsonNumber(text)
            sent = String(text.prefix(40))
        } else {
            return nil
        }
        guard let number, number.rounded(.towardZero) == number,
            Double(range.lowerBound) <= number, number <= Double(range.upperBound)
        else {
            throw .invalidParameter(
                "\(name) must be an integer from \(range.lowerBound) to \(range.upperBound) (it is \(sent))")
        }
        return Int(number)
    }

    /// The number `text` spells as JSON (`5`, `2.0`, `1e2`), or nil: the rule a number in the body follows.
    private func jsonNumber(_ text: String) -> Double? {
        if let integer = Int(text) { return Double(integer) }
        guard case .number(let number, _)? = try? JSONValueCodec.decode(ByteBuffer(string: text), limits: limits)
        else { return nil }
        return number
    }
}
