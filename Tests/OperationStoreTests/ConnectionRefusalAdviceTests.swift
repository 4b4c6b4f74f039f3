import Logging
@testable import PostgresOperationStore
import Testing

/// Cluster review 59, L3: a server that is shutting down (every restart, every failover) answered new connections
/// with 57P03, and the warning told the operator to lower `store.max_connections`.
@Suite("The advice of the connection refusal warning")
struct ConnectionRefusalAdviceTests {
    @Test(
        "57P03 (starting, stopping, recovering) says so; 53300 and 53000 name the pool's size and limits; others neither"
    )
    func adviceBySQLState() {
        let stopping = ConnectionRefusalDiagnosis.advice(
            for: "PostgreSQL refused a new connection: the database system is shutting down (SQLSTATE 57P03)")
        #expect(stopping.description.hasPrefix("PostgreSQL refuses new connections while it starts up, shuts down"))
        #expect(!stopping.description.contains("max_connections"))
        for error in [
            "PostgreSQL refused a new connection: too many connections for role \"gw\" (SQLSTATE 53300)",
            "PostgreSQL refused a new connection: out of memory (SQLSTATE 53000)",
        ] {
            let advice = ConnectionRefusalDiagnosis.advice(for: error)
            #expect(advice.description.contains("lower store.max_connections"), "\(error)")
        }
        // A server that is down or unreachable: no limit to resize (review 59's diff review, L5).
        let down = ConnectionRefusalDiagnosis.advice(for: "cannot connect to PostgreSQL: connection refused")
        #expect(down.description.contains("check that the server is up and reachable"))
        #expect(!down.description.contains("max_connections"))
    }
}
