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
        // The abstract name as the kernel holds it: a NUL, then the name, no terminator (what systemd binds).
        let name = "tg-notify-\(UUID().uuidString)"
        let abstract = try DatagramReceiver(path: "@\(name)", timeoutSeconds: 1)
        #expect(abstract.boundPath == [0] + Array(name.utf8))
    }

    @Test(
        "the states only move forward: a reload before start-up's READY=1 or after STOPPING=1 tells nothing; READY=1 once"
    )
    func phases() async throws {
        let name = "@tg-notify-\(UUID().uuidString)"
        let receiver = try DatagramReceiver(path: name, timeoutSeconds: 1)
        let notifier = ServiceManagerNotifier(socketPath: name)
        var reloads = 0
        notifier.reloading {
            reloads += 1
            return "early"
        }
        #expect(notifier.ready(status: "up"))
        #expect(!notifier.ready(status: "again"))
        notifier.reloading {
            reloads += 1
            return "done"
        }
        #expect(notifier.stopping())
        #expect(!notifier.stopping())
        notifier.reloading {
            reloads += 1
            return "late"
        }
        #expect(reloads == 3, "every reload runs, told or not")
        var received: [String] = []
        while let datagram = try await blocking({ receiver.receive() }) {
            received.append(
                datagram.split(separator: "\n").filter { !$0.hasPrefix("MAINPID=") && !$0.hasPrefix("MONOTONIC_USEC=") }
                    .joined(separator: " "))
        }
        #expect(
            received == ["READY=1 STATUS=up", "RELOADING=1", "READY=1 STATUS=done", "STOPPING=1"], "\(received)")
    }
}
