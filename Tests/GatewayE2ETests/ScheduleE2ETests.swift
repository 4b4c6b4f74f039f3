import Foundation
import GatewayTestSupport
import NIOCore
import Testing

/// Scheduled triggers on real gateways over real sockets: ticks become operations that run, the schedule API,
/// overlap with a run longer than the interval, two processes on one PostgreSQL, and kill -9 with catch-up.
/// Wall-clock time is unavoidable here (the gateway's own clock; `SchedulerTests` drive a manual one): each
/// test waits for the runs it needs (bounded), and sleeps only through windows in which something must NOT
/// happen or an outage the scenario needs, each a named constant.
@Suite("Schedules end to end", .serialized)
struct ScheduleE2ETests {
    /// A window in which no tick must fire (paused, removed): longer than two `@every 1s` ticks.
    static let quietWindow = Duration.milliseconds(2200)
    /// How long `killNineCatchUp` keeps the gateway down: at least two ticks are missed.
    static let downtime = Duration.seconds(3)
    /// The bound on waiting for runs that come one a second: generous for a loaded machine.
    static let runsBound = Duration.seconds(20)

    /// Polls the schedule runs until `enough` holds for them (within `runsBound`); the last list seen.
    static func waitForRuns(
        _ client: AsyncClient, pipeline: String = "demo/echo", headers: [(String, String)] = [],
        until enough: ([[String: Any]]) -> Bool
    ) async throws -> [[String: Any]] {
        var runs: [[String: Any]] = []
        let met = try await eventually(within: runsBound, interval: .milliseconds(100)) {
            runs = try await Self.runs(client, pipeline: pipeline, headers: headers)
            return enough(runs)
        }
        #expect(met, "runs never reached what the test waits for: \(runs.count) runs")
        return runs
    }

    static let pools = """
        pools:
          - {name: demo, transport: inprocess}
        routes:
          - {namespace: demo, pipeline: "*", pool: demo}

        """

    /// The schedule runs among the operations of `pipeline`, oldest first.
    static func runs(_ client: AsyncClient, pipeline: String = "demo/echo", headers: [(String, String)] = [])
        async throws -> [[String: Any]]
    {
        let response = try await client.client.request(
            "GET", "/v1beta/operations?pipeline=\(pipeline)&page_size=1000", headers: headers)
        let body = try json(response.body)
        try #require(response.status == 200, "\(body)")
        let operations = body["operations"] as? [[String: Any]] ?? []
        return operations.filter { $0.scheduleName != nil }.reversed()
    }

    static func ticks(_ runs: [[String: Any]]) -> [Date] {
        runs.compactMap { $0.scheduledTime }
    }

    /// True when `ticks` are distinct, whole seconds and `step` apart with no gap.
    static func contiguous(_ ticks: [Date], step: TimeInterval = 1) -> Bool {
        let sorted = ticks.sorted()
        return zip(sorted, sorted.dropFirst()).allSatisfy { $1.timeIntervalSince($0) == step }
    }

    static func metric(_ text: String, _ series: String) -> Int {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Int(line.dropFirst(series.count + 1)) ?? -1
        }
        return -1
    }

    @Test("@every 1s: one operation per tick, 1 s apart, none extra, named after the schedule, and they run")
    func everySecond() async throws {
        let yaml =
            Self.pools + """
                schedules:
                  - name: heartbeat
                    cron: "@every 1s"
                    route: {namespace: demo, pipeline: echo}
                    inputs: [{greeting: hi}]
                    overlap: allow
                """
        let started = Date()
        try await withTestGateway(yaml: yaml) { gateway in
            let client = try await AsyncClient.connect(port: gateway.port)
            let runs = try await Self.waitForRuns(client) { $0.count >= 5 }
            // One a second, not more: no more runs than whole-second ticks since just before the gateway
            // started (+1 for a tick on the boundary), the time read after the list.
            let elapsed = Date().timeIntervalSince(started)
            #expect(runs.count <= Int(elapsed.rounded(.up)) + 1, "\(runs.count) runs in \(elapsed) s")
            let ticks = Self.ticks(runs)
            #expect(ticks.count == runs.count && Self.contiguous(ticks), "\(ticks)")
            #expect(runs.allSatisfy { $0.scheduleName == "heartbeat" })
            // Each ran through the dispatcher like any trigger-async: succeeded with the schedule's inputs.
            let first = try await client.waitDone(try #require(runs.first?["name"] as? String), timeout: .seconds(10))
            #expect(first.metadataState == "succeeded", "\(first)")
            #expect(first.firstOutput?["greeting"] as? String == "hi")
            let metrics = try await client.client.request("GET", "/metrics")
            let text = String(buffer: metrics.body)
            #expect(
                Self.metric(text, "trigger_gateway_schedule_ticks_total{schedule=\"heartbeat\",outcome=\"fired\"}")
                    >= runs.count,
                "\(text)"
            )
            // Each run stored is an accepted async operation, as a client's trigger is (operator review 58, F3).
            #expect(Self.metric(text, "trigger_gateway_async_accepted_total") >= runs.count, "\(text)")
        }
    }

    @Test("the schedule API: list with state, next fire times and last run; pause, resume, trigger; auth as elsewhere")
    func scheduleAPI() async throws {
        let yaml =
            Self.pools + """
                tokens:
                  - {name: alice, token: s3cret-alice}
                schedules:
                  - name: heartbeat
                    cron: "@every 1s"
                    route: {namespace: demo, pipeline: echo}
                    overlap: allow
                    operators: [alice]
                  - name: nightly
                    cron: "30 2 * * *"
                    timezone: America/New_York
                    route: {namespace: demo, pipeline: upper}
                    catchup_window: 1h
                    paused: true
                    operators: [alice]
                """
        try await withTestGateway(yaml: yaml) { gateway in
            let client = try await AsyncClient.connect(port: gateway.port)
            let auth = [("authorization", "Bearer s3cret-alice")]
            let anonymous = try await client.client.request("GET", "/v1beta/schedules")
            #expect(anonymous.status == 401)

            // Wait for heartbeat's first run to be listed as its last run.
            _ = try await Self.waitForRuns(client, headers: auth) { !$0.isEmpty }
            let listed = try await client.client.request("GET", "/v1beta/schedules", headers: auth)
            #expect(listed.status == 200)
            let schedules = try #require(try json(listed.body)["schedules"] as? [[String: Any]])
            #expect(schedules.map { $0["name"] as? String } == ["heartbeat", "nightly"])
            let heartbeat = schedules[0]
            #expect(heartbeat["state"] as? String == "active")
            #expect(heartbeat["cron"] as? String == "@every 1s")
            #expect(heartbeat["timezone"] as? String == "UTC")
            #expect(heartbeat["pipeline"] as? String == "demo/echo")
            #expect(heartbeat["overlap"] as? String == "allow")
            #expect((heartbeat["nextFireTimes"] as? [String])?.count == 5)
            let lastRun = try #require(heartbeat["lastRun"] as? [String: Any], "\(heartbeat)")
            #expect((lastRun["metadata"] as? [String: Any])?["schedule"] as? String == "heartbeat")
            let nightly = schedules[1]
            #expect(nightly["state"] as? String == "paused")
            #expect(nightly["timezone"] as? String == "America/New_York")
            #expect(nightly["catchupWindowSeconds"] as? Int == 3600)
            // 02:30 New York is 06:30Z or 07:30Z depending on the season.
            #expect((nightly["nextFireTimes"] as? [String])?.allSatisfy { $0.hasSuffix(":30:00Z") } == true)
            #expect(nightly["lastRun"] == nil)

            // Runs belong to no principal: alice sees them in the ordinary operations list.
            #expect(try await Self.runs(client, headers: auth).count >= 1)

            let paused = try await client.client.request("POST", "/v1beta/schedules/heartbeat:pause", headers: auth)
            #expect(paused.status == 200)
            #expect((try json(paused.body)["schedule"] as? [String: Any])?["state"] as? String == "paused")
            // A tick due before the pause answered may still land; none due after it may.
            let pausedAt = Date()
            try await Task.sleep(for: Self.quietWindow)
            let whilePaused = try await Self.runs(client, headers: auth)
            #expect(
                !Self.ticks(whilePaused).contains { $0 > pausedAt }, "a run while paused: \(Self.ticks(whilePaused))")
            let before = whilePaused.count

            let resumed = try await client.client.request("POST", "/v1beta/schedules/heartbeat:resume", headers: auth)
            #expect((try json(resumed.body)["schedule"] as? [String: Any])?["state"] as? String == "active")
            let after = try await Self.waitForRuns(client, headers: auth) { $0.count >= before + 1 }
            // Ticks due while paused are not caught up: no tick between the pause and the resume.
            let ticks = Self.ticks(after).sorted()
            #expect(zip(ticks, ticks.dropFirst()).contains { $1.timeIntervalSince($0) >= 2 }, "\(ticks)")

            // Run now, even while paused; the operation says it was manual.
            let triggered = try await client.client.request("POST", "/v1beta/schedules/nightly:trigger", headers: auth)
            #expect(triggered.status == 200)
            let operation = try #require(try json(triggered.body)["operation"] as? [String: Any])
            let metadata = try #require(operation["metadata"] as? [String: Any])
            #expect(metadata["schedule"] as? String == "nightly")
            #expect(metadata["manualTrigger"] as? Bool == true)
            #expect(metadata["pipeline"] as? String == "demo/upper")
            let name = try #require(operation["name"] as? String)
            let done = try await client.client.request("GET", "/v1beta/\(name)?wait=10s", headers: auth)
            #expect((try json(done.body)["operation"] as? [String: Any])?.metadataState == "succeeded")

            let unknown = try await client.client.request("POST", "/v1beta/schedules/nope:pause", headers: auth)
            #expect(unknown.status == 404)
            #expect(try json(unknown.body)["message"] as? String == "schedule \"nope\" not found")
            let wrongMethod = try await client.client.request("GET", "/v1beta/schedules/heartbeat:pause", headers: auth)
            #expect(wrongMethod.status == 405)
            #expect(wrongMethod.header("allow") == "POST")
            let head = try await client.client.request("HEAD", "/v1beta/schedules", headers: auth)
            #expect(head.status == 200 && head.body.readableBytes == 0)
            let badVerb = try await client.client.request("POST", "/v1beta/schedules/heartbeat:explode", headers: auth)
            #expect(badVerb.status == 404)
            // Clients cannot forge a schedule run.
            let (forged, forgedBody) = try await client.trigger(
                "echo", [:], headers: auth + [("idempotency-key", "schedule:heartbeat@2026-01-01T00:00:00Z")])
            #expect(forged == 400, "\(forgedBody)")
        }
    }

    /// Security review 60, M2: `:pause`, `:resume` and `:trigger` authenticated the caller and discarded it, and a
    /// schedule's run was cancelled by anyone who could see it (every token holder). Before the fix eve's calls
    /// below were all 200, and her cancel ended alice's run.
    @Test("operators: alice pauses, resumes, triggers and cancels a run; eve (another token) gets 403 on each")
    func operatorsOnly() async throws {
        let yaml =
            Self.pools + """
                tokens:
                  - {name: alice, token: s3cret-alice-0123456789}
                  - {name: eve, token: s3cret-eve-0123456789ab}
                schedules:
                  - name: slow
                    cron: "0 0 1 1 *"
                    route: {namespace: demo, pipeline: sleep}
                    inputs: [{ms: 30000}]
                    overlap: allow
                    operators: [alice]
                """
        try await withTestGateway(yaml: yaml) { gateway in
            let client = try await AsyncClient.connect(port: gateway.port)
            let alice = [("authorization", "Bearer s3cret-alice-0123456789")]
            let eve = [("authorization", "Bearer s3cret-eve-0123456789ab")]
            func post(_ path: String, _ headers: [(String, String)]) async throws -> (Int, [String: Any]) {
                let response = try await client.client.request("POST", path, headers: headers)
                return (response.status, try json(response.body))
            }
            func expectDenied(_ answer: (Int, [String: Any]), _ what: String) {
                #expect(answer.0 == 403, "\(what): \(answer.1)")
                #expect(answer.1["code"] as? Int == 7, "\(what): \(answer.1)")
                #expect(
                    (answer.1["message"] as? String)?.contains("schedules[].operators") == true, "\(what): \(answer.1)")
            }

            // Reading stays open to every token holder.
            let listed = try await client.client.request("GET", "/v1beta/schedules", headers: eve)
            #expect(listed.status == 200, "\(listed.bodyString)")

            for verb in ["pause", "resume", "trigger"] {
                expectDenied(try await post("/v1beta/schedules/slow:\(verb)", eve), "eve :\(verb)")
            }
            // An unknown schedule is 404 for her as for anyone.
            #expect(try await post("/v1beta/schedules/nope:pause", eve).0 == 404)
            let state = try json(try await client.client.request("GET", "/v1beta/schedules", headers: eve).body)
            #expect(
                ((state["schedules"] as? [[String: Any]])?.first?["state"] as? String) == "active",
                "eve's :pause changed the schedule: \(state)")
            #expect(try await Self.runs(client, pipeline: "demo/sleep", headers: alice).isEmpty)

            // The operator may; her run sleeps for 30 s.
            var answer = try await post("/v1beta/schedules/slow:pause", alice)
            #expect(answer.0 == 200 && (answer.1["schedule"] as? [String: Any])?["state"] as? String == "paused")
            answer = try await post("/v1beta/schedules/slow:resume", alice)
            #expect(answer.0 == 200 && (answer.1["schedule"] as? [String: Any])?["state"] as? String == "active")
            answer = try await post("/v1beta/schedules/slow:trigger", alice)
            #expect(answer.0 == 200, "\(answer.1)")
            let name = try #require((answer.1["operation"] as? [String: Any])?["name"] as? String)
            let running = try await eventually(within: .seconds(10), interval: .milliseconds(50)) {
                let response = try await client.client.request("GET", "/v1beta/\(name)", headers: eve)
                return (try json(response.body)["operation"] as? [String: Any])?.metadataState == "running"
            }
            #expect(running, "the run never started")

            // Eve sees it but may not cancel it: 403, and it is still running.
            expectDenied(try await post("/v1beta/\(name):cancel", eve), "eve :cancel")
            var read = try await client.client.request("GET", "/v1beta/\(name)", headers: eve)
            #expect(read.status == 200)
            #expect(
                (try json(read.body)["operation"] as? [String: Any])?.metadataState == "running", "\(read.bodyString)")
            // The same over HTTP/2 (h2c prior knowledge): one rule for both frontends.
            let h2 = try await H2TestClient.connect(port: gateway.port)
            let stream = try await h2.request(
                [
                    (":method", "POST"), (":scheme", "http"), (":authority", "localhost"),
                    (":path", "/v1beta/\(name):cancel"),
                ] + eve,
                body: [])
            let snapshot = try await h2.wait(timeout: .seconds(10)) { $0.streams[stream]?.endStream == true }
            #expect(snapshot.streams[stream]?.status == "403", "\(snapshot.streams[stream]?.bodyString ?? "")")
            await h2.close()

            // Her operator cancels it.
            answer = try await post("/v1beta/\(name):cancel", alice)
            #expect(answer.0 == 200, "\(answer.1)")
            read = try await client.client.request("GET", "/v1beta/\(name)", headers: eve)
            #expect((try json(read.body)["operation"] as? [String: Any])?.metadataState == "cancelled")
        }
    }

    /// With no tokens configured (loopback only) every caller may, as before the operators key.
    @Test("auth off: any caller pauses, resumes, triggers and cancels a schedule's run, without operators")
    func authOffAnyCaller() async throws {
        let yaml =
            Self.pools + """
                schedules:
                  - name: slow
                    cron: "0 0 1 1 *"
                    route: {namespace: demo, pipeline: sleep}
                    inputs: [{ms: 30000}]
                """
        try await withTestGateway(yaml: yaml) { gateway in
            let client = try await AsyncClient.connect(port: gateway.port)
            #expect(try await client.post("/v1beta/schedules/slow:pause").status == 200)
            #expect(try await client.post("/v1beta/schedules/slow:resume").status == 200)
            let (status, body) = try await client.post("/v1beta/schedules/slow:trigger")
            #expect(status == 200, "\(body)")
            let name = try #require(body.operationName)
            let (cancelStatus, cancelled) = try await client.post("/v1beta/\(name):cancel")
            #expect(cancelStatus == 200, "\(cancelled)")
            #expect((cancelled["operation"] as? [String: Any])?.metadataState == "cancelled")
        }
    }

    @Test("overlap skip: a run longer than the interval is never overlapped; the ticks meanwhile are skipped")
    func overlapSkipWithSleep() async throws {
        let yaml =
            Self.pools + """
                schedules:
                  - name: slow
                    cron: "@every 1s"
                    route: {namespace: demo, pipeline: sleep}
                    inputs: [{ms: 2500}]
                """
        try await withTestGateway(yaml: yaml) { gateway in
            let client = try await AsyncClient.connect(port: gateway.port)
            // Two runs: the second could only start after the first's 2.5 s, skipping the ticks between.
            let runs = try await Self.waitForRuns(client, pipeline: "demo/sleep") { $0.count >= 2 }
            var finals: [[String: Any]] = []
            for run in runs { finals.append(try await client.waitDone(try #require(run["name"] as? String))) }
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            func time(_ op: [String: Any], _ key: String) -> Date? {
                ((op["metadata"] as? [String: Any])?[key] as? String).flatMap(formatter.date(from:))
            }
            for (previous, next) in zip(finals, finals.dropFirst()) {
                let finished = try #require(time(previous, "finishTime"))
                let created = try #require(time(next, "createTime"))
                #expect(created >= finished, "a run was created while the previous one was still running")
            }
            let text = String(buffer: try await client.client.request("GET", "/metrics").body)
            #expect(
                Self.metric(text, "trigger_gateway_schedule_ticks_total{schedule=\"slow\",outcome=\"skipped_overlap\"}")
                    >= 1,
                "\(text)"
            )
        }
    }

    @Test("a reload adds a schedule (it starts firing) and removes it (it stops)")
    func reloadAddsAndRemoves() async throws {
        try await withTestGateway(yaml: Self.pools) { gateway in
            let client = try await AsyncClient.connect(port: gateway.port)
            let listed = try json(try await client.client.request("GET", "/v1beta/schedules").body)
            #expect((listed["schedules"] as? [Any])?.isEmpty == true)
            try gateway.reload(yaml: Self.scheduleYAML())
            _ = try await Self.waitForRuns(client) { !$0.isEmpty }
            try gateway.reload(yaml: Self.pools)
            // A tick due before the reload returned may still land; none due after it may.
            let removedAt = Date()
            try await Task.sleep(for: Self.quietWindow)
            let ticks = Self.ticks(try await Self.runs(client))
            #expect(!ticks.contains { $0 > removedAt }, "a run after the schedule was removed: \(ticks)")
            let missing = try await client.client.request("POST", "/v1beta/schedules/pulse:trigger")
            #expect(missing.status == 404)
        }
    }

    // MARK: Real processes

    static func scheduleYAML(catchupWindow: String? = nil) -> String {
        Self.pools + """
            schedules:
              - name: pulse
                cron: "@every 1s"
                route: {namespace: demo, pipeline: echo}
                overlap: allow
            \(catchupWindow.map { "    catchup_window: \($0)" } ?? "")

            """
    }

    @Test("two gateways on one PostgreSQL, @every 1s: each tick makes exactly one operation")
    func twoInstancesOnePostgres() async throws {
        guard let (config, _) = try AsyncDurabilityTests.postgresConfig(lease: "5s", workers: 4) else { return }
        defer { try? FileManager.default.removeItem(atPath: config) }
        try (String(contentsOfFile: config, encoding: .utf8) + "\n" + Self.scheduleYAML())
            .write(toFile: config, atomically: true, encoding: .utf8)
        let dirA = AsyncDurabilityTests.temporaryPath("tg-sched-a")
        let dirB = AsyncDurabilityTests.temporaryPath("tg-sched-b")
        defer {
            try? FileManager.default.removeItem(atPath: dirA)
            try? FileManager.default.removeItem(atPath: dirB)
        }
        async let startA = AsyncDurabilityTests.startGateway(dataDir: dirA, config: config)
        async let startB = AsyncDurabilityTests.startGateway(dataDir: dirB, config: config)
        let (a, b) = try await (startA, startB)
        let clientA = try await AsyncClient.connect(port: a.port)
        let clientB = try await AsyncClient.connect(port: b.port)
        _ = try await Self.waitForRuns(clientB) { $0.count >= 5 }
        let fired = [clientA, clientB]
        var counts: [Int] = []
        for client in fired {
            let text = String(buffer: try await client.client.request("GET", "/metrics").body)
            counts.append(
                Self.metric(text, "trigger_gateway_schedule_ticks_total{schedule=\"pulse\",outcome=\"fired\"}"))
        }
        let runs = try await Self.runs(clientB)
        await a.stop()
        await b.stop()
        let ticks = Self.ticks(runs)
        #expect(runs.count >= 5, "\(runs.count) runs")
        #expect(Set(ticks).count == ticks.count, "a tick fired twice: \(ticks)")
        #expect(Self.contiguous(ticks), "a tick was lost: \(ticks)")
        // Every operation was created by exactly one of the two (the other found it by its key): the created
        // counts add up to the operations. Counted before the list, so a tick may land in between.
        #expect(
            counts[0] + counts[1] <= runs.count && counts[0] + counts[1] >= runs.count - 2, "\(counts) vs \(runs.count)"
        )
    }

    @Test("kill -9, restart inside the catch-up window: the missed ticks run, each once")
    func killNineCatchUp() async throws {
        let dataDir = AsyncDurabilityTests.temporaryPath("tg-sched-kill9")
        let config = dataDir + ".yaml"
        try Self.scheduleYAML(catchupWindow: "1m").write(toFile: config, atomically: true, encoding: .utf8)
        defer {
            try? FileManager.default.removeItem(atPath: dataDir)
            try? FileManager.default.removeItem(atPath: config)
        }
        let first = try await AsyncDurabilityTests.startGateway(dataDir: dataDir, config: config)
        let firstRuns = try await Self.waitForRuns(try await AsyncClient.connect(port: first.port)) { !$0.isEmpty }
        await first.stop(signal: SIGKILL)
        let killedAt = Date()
        try await Task.sleep(for: Self.downtime)
        let second = try await AsyncDurabilityTests.startGateway(dataDir: dataDir, config: config)
        let restartedAt = Date()
        func missedTicks(_ ticks: [Date]) -> [Date] {
            ticks.filter { $0 > killedAt.addingTimeInterval(0.5) && $0 < restartedAt.addingTimeInterval(-0.5) }
        }
        // Caught up: the ticks due while down are there, and one after the restart (the catch-up is done).
        let client = try await AsyncClient.connect(port: second.port)
        let runs = try await Self.waitForRuns(client) { runs in
            let ticks = Self.ticks(runs)
            return missedTicks(ticks).count >= 2 && ticks.contains { $0 > restartedAt }
        }
        await second.stop()
        let ticks = Self.ticks(runs)
        #expect(firstRuns.count >= 1)
        #expect(Set(ticks).count == ticks.count, "a tick fired twice: \(ticks)")
        #expect(Self.contiguous(ticks), "a missed tick was not caught up: \(ticks)")
        let missed = missedTicks(ticks)
        #expect(missed.count >= 2, "ticks due while down: \(missed)")
    }
}

extension Dictionary where Key == String, Value == Any {
    var scheduleName: String? { (self["metadata"] as? [String: Any])?["schedule"] as? String }
    var scheduledTime: Date? {
        ((self["metadata"] as? [String: Any])?["scheduledTime"] as? String).flatMap(ISO8601DateFormatter().date(from:))
    }
}
