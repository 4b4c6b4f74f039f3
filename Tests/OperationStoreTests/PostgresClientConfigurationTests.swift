import PostgresNIO
@testable import PostgresOperationStore
import Testing

/// The PostgresNIO pool configuration the store opens its client with (`PostgresOperationStore.clientConfiguration`).
@Suite("PostgreSQL store: its pool's configuration")
struct PostgresClientConfigurationTests {
    @Test("the pool runs no keep-alive queries, keeps no minimum of connections, and takes the URL's settings")
    func poolConfiguration() throws {
        let configuration = try PostgresOperationStore.Configuration(
            url: "postgres://u:p@db.example:6000/app?sslmode=disable&application_name=gw&connect_timeout=4")
        let client = PostgresOperationStore.clientConfiguration(configuration)
        // A keep-alive timer armed at every park of a connection cost ~3 tasks per accepted-and-run operation
        // (bench/README.md, branch asynccost3).
        #expect(client.options.keepAliveBehavior == nil)
        // With no minimum, the pool closes a connection idle for its idle timeout, so no idle connection is kept
        // unwatched for long.
        #expect(client.options.minimumConnections == 0)
        #expect(client.options.maximumConnections == configuration.maximumConnections)
        #expect(client.host == "db.example")
        #expect(client.port == 6000)
        #expect(client.username == "u")
        #expect(client.password == "p")
        #expect(client.database == "app")
        #expect(client.options.connectTimeout == .seconds(4))
        #expect(client.options.additionalStartupParameters.map { "\($0.0)=\($0.1)" } == ["application_name=gw"])
    }

    @Test("a maximum of connections below one is one")
    func atLeastOneConnection() throws {
        var configuration = try PostgresOperationStore.Configuration(url: "postgres://u@h/db")
        configuration.maximumConnections = 0
        #expect(PostgresOperationStore.clientConfiguration(configuration).options.maximumConnections == 1)
        configuration.maximumConnections = 1
        #expect(PostgresOperationStore.clientConfiguration(configuration).options.maximumConnections == 1)
    }

    /// Review 27 L4: `%2Ftmp%2F…` passed check-config and failed at the first connect as an unknown DNS name.
    @Test(
        "libpq's Unix-socket host (a percent-encoded directory) is refused with what to use instead",
        arguments: ["postgres://gw@%2Frun%2Fpostgresql/gateway", "postgres://gw@%2Ftmp%2Fpg:5433/gateway"])
    func unixSocketHostRefused(url: String) throws {
        let error = #expect(throws: (any Error).self) { try PostgresOperationStore.Configuration(url: url) }
        #expect("\(String(describing: error))".contains("Unix-socket directory"), "\(String(describing: error))")
        #expect(
            try PostgresOperationStore.Configuration(url: "postgres://gw@127.0.0.1:5433/gateway").host == "127.0.0.1")
    }
}
