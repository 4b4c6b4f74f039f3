import Foundation
import GatewayServer
import GatewayTestSupport
import Testing

/// sd_notify(3)'s addressing rules, over real datagram sockets; the states in order against the real executable
/// are GatewayE2ETests' `ServiceManagerNotifyTests`.
@Suite("sd_notify: which NOTIFY_SOCKET is used, and how it is addressed")
struct ServiceManagerNotifierTests {
    @Test(
        "NOTIFY_SOCKET unset, empty, relative or too long for a socket address: no notifier (sd_notify ignores those)")
    func unusableVariables() {
        #expect(ServiceManagerNotifier.fromEnvironment([:]) == nil)
        #expect(ServiceManagerNotifier.fromEnvironment(["NOTIFY_SOCKET": ""]) == nil)
        #expect(ServiceManagerNotifier.fromEnvironment(["NOTIFY_SOCKET": "run/notify"]) == nil)
        // sun_path holds 108 bytes with the terminator: 107 is the longest path, 108 is past it.
        let longest = "/" + String(repeating: "a", count: 106)
        #expect(ServiceManagerNotifier.fromEnvironment(["NOTIFY_SOCKET": longest])?.socketPath == longest)
        #expect(ServiceManagerNotifier.fromEnvironment(["NOTIFY_SOCKET": longest + "a"]) == nil)
        #expect(ServiceManagerNotifier.fromEnvironment(["NOTIFY_SOCKET": "@name"])?.socketPath == "@name")
    }

    @Test("a path and an abstract @name each get the datagram; a socket nobody listens on is a false, not an error")
    func addressed() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tg-notify-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for path in [directory.appendingPathComponent("notify").path, "@tg-notify-\(UUID().uuidString)"] {
            let receiver = try DatagramReceiver(path: path, timeoutSeconds: 5)
            let notifier = try #require(ServiceManagerNotifier.fromEnvironment(["NOTIFY_SOCKET": path]))
            #expect(notifier.stopping())
            #expect(try await blocking { receiver.receive() } == "STOPPING=1", "\(path)")
        }
        #expect(!ServiceManagerNotifier(socketPath: directory.appendingPathComponent("nobody").path).stopping())
    }
}
