import AsyncDispatch
import DemoRunner
import FoundationEssentials
import GatewayTestSupport
import NIOCore
import OperationStore
import Testing
import TriggerModel

/// Async mode over REST (API.md §2): accept → committed operation → dispatcher → result, long-poll,
/// cancel, list, idempotency, and the errors.
@Suite("async operations over REST")
struct AsyncRESTTests {
    @Test("trigger-async answers operations/<id> not done; the operation completes with the pipeline's outputs")
    func acceptAndComplete() async throws {
        try await withTestGateway { gateway in
            let client = try await AsyncClient.connect(port: gateway.port)
            let (status, body) = try await client.trigger("upper", ["text": "hello async"])
            #expect(status == 200, "\(body)")
            let operation = try #require(body["operation"] as? [String: Any], "\(body)")
            let name = try #require(operation["name"] as? String)
            #expect(name.hasPrefix("operations/") && name.count == "operations/".count + 26)
            #expect(operation["done"] as? Bool == false)
            // Committed before the answer: the store has it.
            let stored = try await gateway.store.get(id: String(name.dropFirst("operations/".count)))
            #expect(stored?.ref == PipelineRef(namespace: "demo", pipeline: "upper"))

            let done = try await client.waitDone(name)
            #expect(done["done"] as? Bool == true, "\(done)")
            #expect(done.metadataState == "succeeded")
            #expect(done.firstOutput?["text"] as? String == "HELLO ASYNC", "\(done)")
            let metadata = try #require(done["metadata"] as? [String: Any])
            #expect(metadata["pipeline"] as? String == "demo/upper")
            #expect(metadata["attempts"] as? Int == 1)
            #expect((metadata["finishTime"] as? String)?.hasSuffix("Z") == true)
        }
    }

    @Test("triggerAsync and the release variant are async too; the release is in the metadata")
    func aliasAndRelease() async throws {
        try await withTestGateway { gateway in
            let client = try await AsyncClient.connect(port: gateway.port)
            let (_, alias) = try await client.trigger("echo", ["a": 1], verb: "triggerAsync")
            let (_, release) = try await client.trigger("echo", ["b": 2], release: "v3")
            let first = try await client.waitDone(try #require(alias.operationName))
            let second = try await client.waitDone(try #require(release.operationName))
            #expect(first.firstOutput?["a"] as? Int == 1, "\(first)")
            #expect(second.firstOutput?["b"] as? Int == 2, "\(second)")
            #expect((second["metadata"] as? [String: Any])?["release"] as? String == "v3")
        }
    }

    @Test("?wait= returns as soon as the operation finishes, and no later than the wait when it does not")
    func longPoll() async throws {
        try await withTestGateway { gateway in
            let client = try await AsyncClient.connect(port: gateway.port)
            let clock = ContinuousClock()
            let (_, quick) = try await client.trigger("sleep", ["ms": 300])
            var (status, body) = try await client.get("/v1beta/\(try #require(quick.operationName))?wait=50s")
            let answeredAt = Date()
            #expect(status == 200)
            let operation = try #require(body["operation"] as? [String: Any])
            #expect(operation["done"] as? Bool == true, "\(body)")
            // Answered right after the dispatcher stored the result (a notice, not the next poll), however
            // slowly a loaded machine ran the operation itself.
            let finishTime = try #require((operation["metadata"] as? [String: Any])?["finishTime"] as? String)
            let finished = try Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(finishTime)
            #expect(answeredAt.timeIntervalSince(finished) < 2, "\(finishTime) → \(answeredAt)")
            // A wait longer than any duration the gateway takes is a wait as long as allowed (store.max_wait), as
            // `1h` is, not "not a duration" (review 12, finding 9).
            (status, body) = try await client.get("/v1beta/\(try #require(quick.operationName))?wait=99999999999s")
            #expect(status == 200, "\(body)")

            let (_, slow) = try await client.trigger("sleep", ["ms": 20_000])
            let start = clock.now
            (status, body) = try await client.get("/v1beta/\(try #require(slow.operationName))?wait=300ms")
            #expect(status == 200)
            #expect((body["operation"] as? [String: Any])?["done"] as? Bool == false, "\(body)")
            #expect(clock.now - start >= .milliseconds(250) && clock.now - start < .seconds(10))
            (status, body) = try await client.get("/v1beta/\(try #require(slow.operationName))?wait=soon")
            #expect(status == 400, "\(body)")
            _ = try await client.post("/v1beta/\(try #require(slow.operationName)):cancel")
        }
    }

    /// Review 17, finding 3: each abandoned long-poll counted one `trigger_gateway_store_errors_total{operation="get"}`
    /// and logged a store warning naming `Swift.CancellationError()`: the store call made after the client left was
    /// cancelled, and the cancellation was reported as a store failure.
    @Test("long-polls their clients abandon are no store failures: store_errors_total stays 0, the operation runs on")
    func abandonedLongPoll() async throws {
        try await withTestGateway { gateway in
            let client = try await gateway.client()
            let async = AsyncClient(client: client)
            let (_, slow) = try await async.trigger("sleep", ["ms": 20_000])
            let name = try #require(slow.operationName)
            let inFlight = #"trigger_gateway_requests_in_flight{frontend="rest"}"#
            for _ in 0..<3 {
                let poller = try await gateway.client()
                let poll = Task { try? await poller.request("GET", "/v1beta/\(name)?wait=30s") }
                // In flight: this scrape and the long-poll, which is then waiting on the store or for a notice.
                var polling = false
                _ = try await eventually(within: .seconds(10), interval: .milliseconds(20)) {
                    polling = try await MetricsE2ETests.scrape(client).samples[inFlight] == 2
                    return polling
                }
                #expect(polling, "the long-poll never showed in flight")
                await poller.close()
                _ = await poll.value
            }
            let scrape = try await MetricsE2ETests.scrape(client) { $0.samples[inFlight] == 1 }
            #expect(scrape.samples[inFlight] == 1)
            #expect(scrape.samples[#"trigger_gateway_store_errors_total{operation="get"}"#] ?? 0 == 0)
            let (status, body) = try await async.get("/v1beta/\(name)")
            #expect(status == 200)
            #expect((body["operation"] as? [String: Any])?["done"] as? Bool == false, "\(body)")
            _ = try await async.post("/v1beta/\(name):cancel")
        }
    }

    @Test("the same Idempotency-Key and body give the same operation; another body is 409")
    func idempotency() async throws {
        try await withTestGateway { gateway in
            let client = try await AsyncClient.connect(port: gateway.port)
            let key = [("idempotency-key", "key-\(UUID().uuidString)")]
            let (s1, first) = try await client.trigger("echo", ["x": "same"], headers: key)
            let (s2, again) = try await client.trigger("echo", ["x": "same"], headers: key)
            #expect(s1 == 200 && s2 == 200)
            #expect(first.operationName != nil && first.operationName == again.operationName)
            let (s3, other) = try await client.trigger("echo", ["x": "different"], headers: key)
            #expect(s3 == 409, "\(other)")
            #expect(other["code"] as? Int == 6)
            #expect((other["message"] as? String)?.contains("Idempotency-Key") == true, "\(other)")
            let (_, fresh) = try await client.trigger("echo", ["x": "same"])
            #expect(fresh.operationName != first.operationName)
        }
    }

    @Test("an Idempotency-Key's inputs are compared as parsed values: whitespace does not count, member order does")
    func idempotencyComparesParsedInputs() async throws {
        try await withTestGateway { gateway in
            let client = try await TestHTTPClient.connect(port: gateway.port)
            let key = ("idempotency-key", "key-\(UUID().uuidString)")
            func post(_ body: String) async throws -> (status: Int, json: [String: Any]) {
                let response = try await client.request(
                    "POST", "/v1beta/namespaces/demo/pipelines/echo/trigger-async",
                    headers: jsonHeaders + [key], body: ByteBuffer(string: body))
                return (response.status, try json(response.body))
            }
            let first = try await post(#"{"data":[{"variable":{"a":1,"b":"two"}}]}"#)
            let spaced = try await post("{ \"data\" : [ { \"variable\" : { \"a\" : 1 ,\n \"b\" : \"two\" } } ] }")
            #expect(first.status == 200 && spaced.status == 200, "\(first.json) \(spaced.json)")
            #expect(first.json.operationName != nil && spaced.json.operationName == first.json.operationName)
            let reordered = try await post(#"{"data":[{"variable":{"b":"two","a":1}}]}"#)
            #expect(reordered.status == 409, "\(reordered.json)")
        }
    }

    @Test(
        "unknown id is 404; cancel of a finished operation is 409 naming its state; cancel of a running one works, again is 200"
    )
    func cancelAndNotFound() async throws {
        let probe = DemoPipelines.CancellationProbe()
        try await withTestGateway(inProcessRunner: DemoPipelines(cancellations: probe)) { gateway in
            let client = try await AsyncClient.connect(port: gateway.port)
            var (status, body) = try await client.get("/v1beta/operations/00000000000000000000000000")
            #expect(status == 404, "\(body)")
            #expect(body["code"] as? Int == 5)
            (status, body) = try await client.post("/v1beta/operations/nope:cancel")
            #expect(status == 404, "\(body)")

            let (_, done) = try await client.trigger("echo", ["v": 1])
            let doneName = try #require(done.operationName)
            _ = try await client.waitDone(doneName)
            (status, body) = try await client.post("/v1beta/\(doneName):cancel")
            #expect(status == 409, "\(body)")
            #expect(body["code"] as? Int == 9)
            #expect((body["message"] as? String)?.hasSuffix("has already succeeded") == true, "\(body)")

            let (_, long) = try await client.trigger("sleep", ["ms": 30_000])
            let longName = try #require(long.operationName)
            // Let the dispatcher claim it, so the cancel reaches a running call.
            let claimed = try await eventually(within: .seconds(10)) {
                let (_, current) = try await client.get("/v1beta/\(longName)")
                return (current["operation"] as? [String: Any])?.metadataState == "running"
            }
            #expect(claimed, "the dispatcher never started the operation")
            (status, body) = try await client.post("/v1beta/\(longName):cancel")
            #expect(status == 200, "\(body)")
            let cancelled = try #require(body["operation"] as? [String: Any])
            #expect(cancelled["done"] as? Bool == true)
            #expect(cancelled.metadataState == "cancelled")
            #expect((cancelled["error"] as? [String: Any])?["code"] as? Int == 1, "\(cancelled)")
            // The running call was stopped (the pipeline saw its cancellation), and once the dispatcher is
            // done with it (no async run left on /metrics) what it stored has not overwritten the cancel.
            try await withTimeout(.seconds(5)) { await probe.waitForCount(atLeast: 1) }
            #expect(probe.cancelledRefs.map(\.pipeline) == ["sleep"])
            let settled = try await eventually(within: .seconds(5)) {
                let scrape = Exposition(try await client.client.request("GET", "/metrics").bodyString)
                return scrape.samples["trigger_gateway_async_running"] == 0
            }
            #expect(settled, "the cancelled run is still counted as running")
            let final = try await client.get("/v1beta/\(longName)")
            #expect((final.json["operation"] as? [String: Any])?.metadataState == "cancelled")
            // A retried cancel is idempotent (review 8): 200 with the cancelled operation, not 409, and the
            // finished count is not bumped again.
            let before = Exposition(try await client.client.request("GET", "/metrics").bodyString)
            (status, body) = try await client.post("/v1beta/\(longName):cancel")
            #expect(status == 200, "\(body)")
            #expect((body["operation"] as? [String: Any])?.metadataState == "cancelled", "\(body)")
            #expect((body["operation"] as? [String: Any])?["name"] as? String == longName, "\(body)")
            let after = Exposition(try await client.client.request("GET", "/metrics").bodyString)
            let finished = #"trigger_gateway_async_finished_total{state="cancelled"}"#
            #expect(
                after.samples[finished] == before.samples[finished], "\(String(describing: after.samples[finished]))")
        }
    }

    @Test("a pipeline's own failure is not retried: failed after one attempt with its code and message")
    func failureAfterAttempts() async throws {
        let yaml = "store: {max_attempts: 2, retry_backoff: 20ms}\n"
        try await withTestGateway(yaml: yaml) { gateway in
            let client = try await AsyncClient.connect(port: gateway.port)
            let (_, body) = try await client.trigger("fail", ["message": "boom here"])
            let done = try await client.waitDone(try #require(body.operationName))
            #expect(done.metadataState == "failed", "\(done)")
            let error = try #require(done["error"] as? [String: Any])
            #expect(error["code"] as? Int == 13)
            #expect(error["message"] as? String == "boom here")
            #expect((done["metadata"] as? [String: Any])?["attempts"] as? Int == 1)
            #expect(done["response"] == nil)
        }
    }

    @Test("an unknown pipeline is refused at once (404), and nothing is stored")
    func unknownPipeline() async throws {
        try await withTestGateway { gateway in
            let client = try await AsyncClient.connect(port: gateway.port)
            let response = try await client.client.request(
                "POST", "/v1beta/namespaces/nowhere/pipelines/p/trigger-async", headers: jsonHeaders,
                body: ByteBuffer(string: #"{"data":[{"variable":{}}]}"#)
            )
            #expect(response.status == 404, "\(response.bodyString)")
            let page = try await gateway.store.list(filter: OperationFilter(), pageSize: 10, pageToken: nil)
            #expect(page.operations.isEmpty)
        }
    }

    @Test(
        "a pipeline a * route sends to a runner that lacks it is refused as a sync trigger is; nothing stored")
    func unknownBehindWildcard() async throws {
        // The default configuration routes demo/* to the demo runner, which describes its pipelines.
        try await withTestGateway { gateway in
            let client = try await AsyncClient.connect(port: gateway.port)
            let (syncStatus, sync) = try await client.trigger("nope", [:], verb: "trigger")
            #expect(syncStatus == 404, "\(sync)")
            for verb in ["trigger-async", "triggerAsync"] {
                let (status, answer) = try await client.trigger("nope", [:], verb: verb)
                #expect(status == 404, "\(answer)")
                #expect(answer["code"] as? Int == sync["code"] as? Int, "\(answer)")
                #expect(answer["message"] as? String == sync["message"] as? String, "\(answer) vs \(sync)")
            }
            #expect((sync["message"] as? String)?.contains("not found in the demo runner") == true, "\(sync)")
            let page = try await gateway.store.list(filter: OperationFilter(), pageSize: 10, pageToken: nil)
            #expect(page.operations.isEmpty)
            // A pipeline it has is still accepted through the same route.
            #expect(try await client.trigger("echo", [:]).status == 200)
            // A keyed request asks only the route table, so a retry of an operation accepted before the pipeline
            // went gets that operation, not a 404: stored (and failing when run), as before the check.
            let keyed = try await client.client.request(
                "POST", "/v1beta/namespaces/demo/pipelines/nope/trigger-async",
                headers: jsonHeaders + [("idempotency-key", "k-nope")],
                body: ByteBuffer(string: #"{"data":[{"variable":{}}]}"#))
            #expect(keyed.status == 200, "\(keyed.bodyString)")
        }
    }

    @Test("a route naming the pipeline, or a * route whose runner cannot be asked, refuses nothing: stored as ever")
    func acceptedWithoutAnswer() async throws {
        let yaml = """
            pools:
              - {name: away, transport: grpc, endpoints: ["127.0.0.1:1"]}
              - {name: demo, transport: inprocess}
            routes:
              - {namespace: demo, pipeline: "*", pool: away}
              - {namespace: demo, pipeline: nope, pool: demo}
            """
        try await withTestGateway(yaml: yaml) { gateway in
            let client = try await AsyncClient.connect(port: gateway.port)
            // demo/nope is routed by name to the demo runner (which lacks it): the configuration says it exists.
            var (status, answer) = try await client.trigger("nope", [:])
            #expect(status == 200, "\(answer)")
            // demo/anything goes to a runner that is down: not known not to exist.
            (status, answer) = try await client.trigger("anything", [:])
            #expect(status == 200, "\(answer)")
            let page = try await gateway.store.list(filter: OperationFilter(), pageSize: 10, pageToken: nil)
            #expect(Set(page.operations.map(\.ref.pipeline)) == ["nope", "anything"])
        }
    }

    @Test("list filters by pipeline and state and pages without repeats")
    func list() async throws {
        try await withTestGateway { gateway in
            let client = try await AsyncClient.connect(port: gateway.port)
            var echoNames: Set<String> = []
            for i in 0..<5 {
                let (_, body) = try await client.trigger("echo", ["i": i])
                echoNames.insert(try #require(body.operationName))
            }
            let (_, upper) = try await client.trigger("upper", ["s": "x"])
            for name in echoNames { _ = try await client.waitDone(name) }
            _ = try await client.waitDone(try #require(upper.operationName))

            var seen: [String] = []
            var token = ""
            repeat {
                let (status, page) = try await client.get(
                    "/v1beta/operations?pipeline=demo%2Fecho&page_size=2&page_token=\(token)")
                #expect(status == 200, "\(page)")
                let operations = try #require(page["operations"] as? [[String: Any]])
                #expect(operations.count <= 2)
                seen += operations.compactMap { $0["name"] as? String }
                token = page["nextPageToken"] as? String ?? ""
            } while !token.isEmpty && seen.count < 20
            #expect(seen.count == 5)
            #expect(Set(seen) == echoNames)

            var (status, page) = try await client.get("/v1beta/operations?state=succeeded&page_size=100")
            #expect(status == 200)
            #expect((page["operations"] as? [[String: Any]])?.count == 6, "\(page)")
            (status, page) = try await client.get("/v1beta/operations?state=running")
            #expect((page["operations"] as? [[String: Any]])?.isEmpty == true)
            (status, page) = try await client.get("/v1beta/operations?state=sleeping")
            #expect(status == 400, "\(page)")
            (status, page) = try await client.get("/v1beta/operations?pipeline=nope")
            #expect(status == 400, "\(page)")
            (status, page) = try await client.get("/v1beta/operations?page_token=garbage")
            #expect(status == 400, "\(page)")
            // A token made under one filter is refused under another (AIP-158), and kept good under its own.
            (status, page) = try await client.get("/v1beta/operations?pipeline=demo%2Fecho&page_size=2")
            let first = try #require(page["nextPageToken"] as? String)
            for other in ["pipeline=demo%2Fupper", "pipeline=demo%2Fecho&state=succeeded", ""] {
                (status, page) = try await client.get("/v1beta/operations?\(other)&page_size=2&page_token=\(first)")
                #expect(status == 400, "\(other): \(page)")
                #expect((page["message"] as? String)?.hasPrefix("page_token was made for another filter") == true)
            }
            (status, page) = try await client.get(
                "/v1beta/operations?pipeline=demo%2Fecho&page_size=2&page_token=\(first)")
            #expect(status == 200, "\(page)")

            // What would otherwise be answered as if unfiltered, or filtered by the first value only (review 8):
            // 400 INVALID_ARGUMENT naming the parameter.
            for (query, words) in [
                ("filter=state%3Dfailed", "unknown query parameter \"filter\""),
                ("pipline=demo%2Fecho", "unknown query parameter \"pipline\""),
                ("pipeline=demo%2Fecho&pipeline=demo%2Ffail", "\"pipeline\" is given 2 times"),
                (
                    "state=queued&state=running",
                    "\"state\" is given 2 times; the operations list takes one value (list each state separately)"
                ),
                ("page_size=2&pageSize=3", "\"page_size\" is given 2 times; the operations list takes one value"),
                ("pipeline=demo%2F*", "wildcards are not supported"),
            ] {
                (status, page) = try await client.get("/v1beta/operations?\(query)")
                #expect(status == 400, "\(query): \(page)")
                #expect(page["code"] as? Int == 3, "\(query): \(page)")
                #expect((page["message"] as? String)?.contains(words) == true, "\(query): \(page)")
                // Only a filter is "listed separately"; a page size is simply one value.
                #expect(
                    (page["message"] as? String)?.hasSuffix("separately)")
                        == (query.hasPrefix("state=q") || query.hasPrefix("pipeline=demo%2Fecho&")),
                    "\(query): \(page)")
            }
        }
    }

    @Test("store unavailable at trigger time: 503 UNAVAILABLE and no operation id")
    func storeUnavailable() async throws {
        let store = UnavailableStore()
        try await withTestGateway(store: store) { gateway in
            let client = try await AsyncClient.connect(port: gateway.port)
            let (status, body) = try await client.trigger("echo", ["a": 1])
            #expect(status == 503, "\(body)")
            #expect(body["code"] as? Int == 14)
            #expect(body["operation"] == nil)
            #expect((body["message"] as? String)?.contains("store") == true, "\(body)")
        }
    }

    @Test("with tokens, an operation is visible only to the principal that created it")
    func principalScoping() async throws {
        let yaml = """
            tokens:
              - {name: alice, token: alice-token}
              - {name: bob, token: bob-token}
            """
        try await withTestGateway(yaml: yaml) { gateway in
            let client = try await AsyncClient.connect(port: gateway.port)
            let (status, body) = try await client.trigger(
                "echo", ["a": 1], headers: [("authorization", "Bearer alice-token")])
            #expect(status == 200, "\(body)")
            let name = try #require(body.operationName)
            var response = try await client.client.request(
                "GET", "/v1beta/\(name)", headers: [("authorization", "Bearer bob-token")])
            #expect(response.status == 404)
            response = try await client.client.request(
                "GET", "/v1beta/\(name)", headers: [("authorization", "Bearer alice-token")])
            #expect(response.status == 200)
            response = try await client.client.request("GET", "/v1beta/\(name)")
            #expect(response.status == 401)

            // Security review, I1: a long poll on another's operation is refused before it waits (waited on first,
            // the 404 came when alice's run ended, which told bob when it did). Her run lasts ten minutes, bob
            // asks to wait as long: his 404 must come within the exchange's ten seconds.
            let (slowStatus, slowBody) = try await client.trigger(
                "sleep", ["ms": 600_000], headers: [("authorization", "Bearer alice-token")])
            #expect(slowStatus == 200, "\(slowBody)")
            let slow = try #require(slowBody.operationName)
            let raw = try await RawTCPClient.exchange(
                port: gateway.port,
                sending: [
                    Array(
                        ("GET /v1beta/\(slow)?wait=600s HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer bob-token\r\n"
                            + "Connection: close\r\n\r\n").utf8)
                ],
                timeout: .seconds(10))
            let answer = String(decoding: raw, as: UTF8.self)
            #expect(answer.hasPrefix("HTTP/1.1 404"), "\(answer)")
        }
    }
}

/// A store whose every call fails as unreachable: what the frontends see when PostgreSQL is down.
final class UnavailableStore: OperationStore {
    func unavailable() -> GatewayError { GatewayError(.unavailable, "operation store unavailable: test store is down") }
    func enqueue(_ request: TriggerRequest, idempotencyKey: String?) async throws -> (
        operation: Operation, created: Bool
    ) {
        throw unavailable()
    }
    func get(id: String) async throws -> Operation? { throw unavailable() }
    func list(filter: OperationFilter, pageSize: Int, pageToken: String?) async throws -> (
        operations: [Operation], nextPageToken: String?
    ) { throw unavailable() }
    func cancel(id: String, webhookOwner: String?) async throws -> Operation { throw unavailable() }
    func claimWebhooks(owner: String, leaseDuration: Duration, limit: Int, now: Date) async throws
        -> [PendingWebhook]
    {
        throw unavailable()
    }
    func recordWebhookAttempt(id: String, owner: String, attempts: Int, nextAttemptAt: Date?) async throws -> Bool {
        throw unavailable()
    }
    func claim(
        owner: String, leaseDuration: Duration, limit: Int, now: Date, scope: ClaimScope, takeover: LeaseTakeover
    ) async throws -> [Operation] {
        throw unavailable()
    }
    func renewLease(id: String, owner: String, leaseDuration: Duration, now: Date) async throws -> Bool {
        throw unavailable()
    }
    func expireLeases(ownerPrefix: String, sparing: String?, now: Date) async throws -> Int {
        throw unavailable()
    }
    func complete(id: String, owner: String, result: TriggerResult, now: Date, webhook: Bool) async throws -> Bool {
        throw unavailable()
    }
    func fail(id: String, owner: String, error: GatewayError, retryAt: Date?, now: Date, webhook: Bool)
        async throws -> Bool
    {
        throw unavailable()
    }
    func release(id: String, owner: String, notBefore: Date, callMade: Bool, now: Date) async throws -> Bool {
        throw unavailable()
    }
    func uncountAdoptedClaims(id: String, owner: String, count: Int, from attempts: Int) async throws -> Bool {
        throw unavailable()
    }
    func queuedCount() async throws -> Int { throw unavailable() }
    func queuedCount(pipelineKey: String) async throws -> Int { throw unavailable() }
    func queuedByPipeline() async throws -> [PipelineQueue] { throw unavailable() }
    func purge(finishedBefore: Date) async throws -> Int { throw unavailable() }
    func delete(id: String) async throws -> Bool { throw unavailable() }
    func probe(instance: String, now: Date) async throws { throw unavailable() }
    func instanceInUseElsewhere(instance: String, probeInterval: Duration) async throws -> Bool { throw unavailable() }
    func close() async throws {}
}
