import TriggerModel

/// The errors the backend layer makes, in one place so their wording stays consistent.
enum BackendErrors {
    static func overloaded(pool: String, limit: Int, queue: Int) -> GatewayError {
        GatewayError(
            .overloaded,
            "backend pool \"\(pool)\" is overloaded: \(limit) calls running and \(queue) queued; retry later"
        )
    }

    static func deadline(pool: String, after: String) -> GatewayError {
        GatewayError(.deadlineExceeded, "backend pool \"\(pool)\" did not answer within \(after)")
    }

    static func connectFailed(pool: String, endpoint: String, reason: String) -> GatewayError {
        GatewayError(.backendFailed, "backend pool \"\(pool)\": cannot connect to \(endpoint): \(reason)")
    }

    static func connectionLost(pool: String, endpoint: String) -> GatewayError {
        GatewayError(.backendFailed, "backend pool \"\(pool)\": \(endpoint) closed the connection before answering")
    }

    static func badResponse(pool: String, endpoint: String, reason: String) -> GatewayError {
        GatewayError(.backendFailed, "backend pool \"\(pool)\": \(endpoint) answered garbage: \(reason)")
    }
}
