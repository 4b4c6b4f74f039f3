import AsyncDispatch
import NIOCore
import Routing
import TriggerModel

/// The schedule endpoints (API.md §4c): `GET /v1beta/schedules` (each schedule with its state, next fire times
/// and last run) and `POST /v1beta/schedules/{name}:pause`, `:resume`, `:trigger` (run now, answered like
/// `trigger-async` with `{"operation":…}`). Authenticated like every other endpoint; any body is ignored. Every
/// caller may list; with tokens required, only a schedule's `operators` may pause, resume or trigger it (403
/// PERMISSION_DENIED naming the key otherwise; security review 60, M2).
extension RESTRequestHead {
    func scheduleStart(_ path: RESTPath, services: FrontendServices, requestID: String) -> RESTStart {
        func fail(_ error: GatewayError) -> RESTStart {
            .respond(.error(error, requestID: requestID), closeConnection: false)
        }
        let principal: String?
        do {
            principal = try services.authenticator.authenticate(authorization: first("authorization"))
        } catch {
            return fail(gatewayError(from: error))
        }
        guard let scheduler = services.scheduler else {
            return fail(GatewayError(.unimplemented, "schedules are not available on this gateway (no async store)"))
        }
        if case .scheduleAction(let name, let action) = path {
            do {
                try scheduler.checkMayControl(
                    name: name, action: action.rawValue, principal: principal,
                    authRequired: services.authenticator.authRequired)
            } catch {
                return fail(error)
            }
        }
        switch path {
        case .listSchedules:
            return .run(
                RESTWork(requestID: requestID) {
                    do {
                        let statuses = try await scheduler.statuses()
                        var body = ByteBufferAllocator().buffer(capacity: 512 * max(statuses.count, 1))
                        ScheduleView.writeList(statuses, into: &body)
                        return .json(status: 200, body: body, requestID: requestID)
                    } catch {
                        return .error(gatewayError(from: error, requestID: requestID), requestID: requestID)
                    }
                })
        case .scheduleAction(let name, .trigger):
            return .run(
                RESTWork(requestID: requestID) {
                    await RESTOperations.answer(requestID: requestID) {
                        try await scheduler.trigger(name: name)
                    }
                })
        case .scheduleAction(let name, let action):
            return .run(
                RESTWork(requestID: requestID) {
                    do {
                        let status =
                            action == .pause
                            ? try await scheduler.pause(name: name) : try await scheduler.resume(name: name)
                        var body = ByteBufferAllocator().buffer(capacity: 512)
                        ScheduleView.write(status, into: &body)
                        return .json(status: 200, body: body, requestID: requestID)
                    } catch {
                        return .error(gatewayError(from: error, requestID: requestID), requestID: requestID)
                    }
                })
        default:
            return fail(GatewayError(.notFound, "no endpoint at \(method) \(pathOnly)"))
        }
    }
}
