#!/usr/bin/env python3
"""Abacus.AI interop client for trigger-gateway tests: the published `abacusai` client (1.4.119, unmodified),
run from .venv-abacus against the gateway's /api/v0 surface.

Usage: abacus_client.py SCENARIO PORT [ARGS...]; the API key is env ABACUS_API_KEY. Prints one JSON object on
stdout; exits 0 unless the scenario itself could not run. An ApiException the client raises is reported as
{"exception": "<class name>", "message": "...", "http_status": N, "request_id": "..."}.

Every HTTP request the client makes is recorded (method, path, status, elapsed seconds, body) through the one
`requests.Session.send` every call goes through, so a test sees what construction cost in requests, not only in
time.
"""
import json
import os
import sys
import time

import requests

REQUESTS = []
_send = requests.Session.send


def _recording_send(self, request, **kwargs):
    started = time.monotonic()
    response = _send(self, request, **kwargs)
    path = requests.utils.urlparse(request.url).path
    body = request.body.decode() if isinstance(request.body, bytes) else request.body
    REQUESTS.append([request.method, path, response.status_code, round(time.monotonic() - started, 3), body])
    return response


requests.Session.send = _recording_send

from abacusai import ApiClient, ApiException  # noqa: E402
from abacusai.api_class import PythonFunctionArgument  # noqa: E402


def client(port, trailing_slash=False):
    return ApiClient(server="http://127.0.0.1:%d%s" % (port, "/" if trailing_slash else ""), include_tb=True)


def mappings(style, items):
    """`camel`: PythonFunctionArgument objects (the client serializes them in camelCase); `snake`: plain dicts
    with snake_case keys (sent unchanged); `raw`: the JSON items exactly as given."""
    if style == "camel":
        return [PythonFunctionArgument(variable_type=i["variable_type"], name=i["name"], value=i.get("value"),
                                       is_required=i.get("is_required", True), item_type=i.get("item_type"))
                for i in items]
    if style == "snake":
        return [dict(i) for i in items]
    return items


def version_dict(pv):
    d = pv.to_dict()
    d["step_versions"] = [s.to_dict() for s in (pv.step_versions or [])]
    return d


def scenario_construct(port, trailing_slash="0"):
    """ApiClient() alone: how long it took and which requests it made. `trailing_slash` 1: the server URL ends in
    "/", which the client joins to "/api/v0/..." as "//api/v0/..."."""
    started = time.monotonic()
    c = client(port, trailing_slash == "1")
    elapsed = time.monotonic() - started
    return {"elapsed": elapsed, "requests": REQUESTS, "api_endpoint": c.api_endpoint,
            "prediction_endpoint": c.prediction_endpoint, "web_version": c.web_version}


def scenario_run(port, pipeline, style, items, wait):
    """run_pipeline, then (wait=1) wait_for_pipeline and describe_pipeline_version of the same version."""
    c = client(port)
    pv = c.run_pipeline(pipeline if pipeline != "-" else None, pipeline_variable_mappings=mappings(style, json.loads(items)))
    answer = {"started": version_dict(pv)}
    if wait == "1":
        started = time.monotonic()
        done = pv.wait_for_pipeline(timeout=60)
        answer["waited"] = time.monotonic() - started
        answer["final"] = version_dict(done)
        described = c.describe_pipeline_version(pv.pipeline_version)
        answer["described"] = version_dict(described)
        steps = described.step_versions or []
        answer["outputs"] = steps[0].output_variable_mappings if steps else None
        # The Python type each output value arrived as (JSON cannot tell `2.0` from `2` once re-read in Swift).
        answer["output_types"] = {o["name"]: type(o["value"]).__name__ for o in answer["outputs"] or []
                                  if isinstance(o, dict) and "name" in o}
    return answer


def scenario_list(port, pipeline, limit):
    c = client(port)
    # A Python float (`"1.0"`) is passed as one: the client sends it in its JSON body as `1.0`.
    number = float(limit) if "." in limit else int(limit)
    return {"versions": [version_dict(v) for v in c.list_pipeline_versions(pipeline, limit=number)]}


def scenario_describe_pipeline(port, pipeline):
    c = client(port)
    p = c.describe_pipeline(pipeline)
    latest = p.latest_pipeline_version
    return {"pipeline_id": p.pipeline_id, "pipeline_name": p.pipeline_name,
            "latest": version_dict(latest) if latest else None}


def scenario_describe_version(port, version):
    c = client(port)
    return {"version": version_dict(c.describe_pipeline_version(version))}


def scenario_version_logs(port, version):
    """list_pipeline_version_logs: PipelineVersionLogs with its step_logs (PipelineStepVersionLogs)."""
    c = client(port)
    logs = c.list_pipeline_version_logs(version)
    steps = logs.step_logs if isinstance(logs.step_logs, list) else [logs.step_logs]
    return {"step_logs": [s.to_dict() for s in steps if s is not None]}


def scenario_step_logs(port, version):
    """get_step_version_logs: by the client, and as the step version describe_pipeline_version returns asks it."""
    c = client(port)
    direct = c.get_step_version_logs(version)
    via_step = c.describe_pipeline_version(version).step_versions[0].get_step_version_logs()
    return {"direct": direct.to_dict(), "via_step": via_step.to_dict()}


def scenario_reset_version(port, version):
    c = client(port)
    return {"version": version_dict(c.reset_pipeline_version(version))}


SCENARIOS = {
    "version_logs": scenario_version_logs,
    "step_logs": scenario_step_logs,
    "reset_version": scenario_reset_version,
    "construct": scenario_construct,
    "run": scenario_run,
    "list": scenario_list,
    "describe_pipeline": scenario_describe_pipeline,
    "describe_version": scenario_describe_version,
}


def main():
    scenario, port, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    try:
        answer = SCENARIOS[scenario](port, *args)
    except ApiException as e:
        answer = {"exception": type(e).__name__, "message": e.message, "http_status": e.http_status,
                  "request_id": e.request_id}
    answer.setdefault("requests", REQUESTS)
    print(json.dumps(answer, default=str))


if __name__ == "__main__":
    main()
