"""Drives the gateway's Craft AI surface with the unmodified craft-ai-sdk (0.74.7, in .venv-craft).

Usage: craft_client.py SCENARIO BASE_URL [ARGS...]
Prints one JSON object on stdout: {"result": ...} on success, {"error": {...}} when the SDK raised, plus
"http": every HTTP exchange the SDK made (method, path, status), so tests can count 307 rounds.
Environment: CRAFT_SDK_TOKEN (default "any-sdk-token").

Scenarios:
  run_json PIPELINE INPUTS_JSON                 run_pipeline with JSON inputs (waits)
  run_file PIPELINE INPUT_NAME HEX_BYTES        run_pipeline with one io.BytesIO file input (waits);
                                                HEX_BYTES "-" reads the hex from stdin (large files)
  run_nowait PIPELINE INPUTS_JSON               run_pipeline(wait_for_completion=False)
  run_mapped PIPELINE INPUTS_JSON INPUT_SOURCES_JSON OUTPUT_DESTINATIONS_JSON
                                                run_pipeline with inputs_mapping / outputs_mapping (lists of
                                                InputSource / OutputDestination keyword arguments)
  trigger DEPLOYMENT TOKEN INPUTS_JSON WAIT     trigger_endpoint (WAIT: true/false); TOKEN "-" for none
  trigger_file DEPLOYMENT TOKEN INPUT_NAME HEX [INPUTS_JSON]
                                                trigger_endpoint with one bytes file input and optional
                                                other inputs (multipart, each JSON-encoded) (waits)
  trigger_then_retrieve DEPLOYMENT TOKEN INPUTS_JSON
                                                trigger_endpoint(wait_for_completion=False), then
                                                retrieve_endpoint_results
  retrieve DEPLOYMENT TOKEN EXECUTION_ID        retrieve_endpoint_results
  get_pipeline PIPELINE [WAIT]                  get_pipeline (WAIT "true": wait_for_completion=True)
  list_pipelines                                list_pipelines
  list_executions PIPELINE                      list_pipeline_executions
  get_execution EXECUTION_ID                    get_pipeline_execution
  execution_input EXECUTION_ID NAME             get_pipeline_execution_input
  execution_output EXECUTION_ID NAME            get_pipeline_execution_output
  execution_logs EXECUTION_ID [KWARGS_JSON]     get_pipeline_execution_logs; KWARGS_JSON may hold
                                                from_ms / to_ms (become from_datetime / to_datetime) and limit
  list_deployments                              list_deployments
  get_deployment NAME [WAIT]                    get_deployment (WAIT "true": wait_for_completion=True,
                                                timeout_s=10)
  create_deployment PIPELINE NAME RULE [KWARGS_JSON]
                                                create_deployment(pipeline, name, execution_rule, **KWARGS);
                                                timeout_s 10 unless KWARGS names one
  delete_deployment NAME                        delete_deployment
  delete_execution EXECUTION_ID                 delete_pipeline_execution
  unserved                                      each call the gateway does not serve, in turn (get_pipeline_logs,
                                                get_deployment_logs, update_deployment, delete_pipeline of
                                                "echo"): {call: error or result} as the result
"""

import datetime
import io
import json
import os
import sys
from urllib.parse import urlsplit

import requests.adapters

from craft_ai_sdk import CraftAiSdk
from craft_ai_sdk.io import InputSource, OutputDestination
from craft_ai_sdk.exceptions import SdkException

exchanges = []
_send = requests.adapters.HTTPAdapter.send


def _recording_send(self, request, *args, **kwargs):
    response = _send(self, request, *args, **kwargs)
    exchanges.append({"method": request.method, "path": urlsplit(request.url).path, "status": response.status_code})
    return response


requests.adapters.HTTPAdapter.send = _recording_send


def encode(value):
    """JSON-safe form of an SDK result: bytes become {"hex": ...}."""
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [encode(v) for v in value]
    return value


def describe(error):
    """An SdkException as the tests read it: what it carries and what it prints."""
    return {"message": error.message, "status_code": error.status_code, "name": error.name, "text": str(error)}


def main():
    scenario, base = sys.argv[1], sys.argv[2]
    args = sys.argv[3:]
    sdk = CraftAiSdk(
        sdk_token=os.environ.get("CRAFT_SDK_TOKEN", "any-sdk-token"),
        environment_url=base,
        control_url=base,
        verbose_log=False,
    )
    token = lambda t: None if t == "-" else t  # noqa: E731
    if scenario == "run_json":
        result = sdk.run_pipeline(args[0], inputs=json.loads(args[1]))
    elif scenario == "run_nowait":
        result = sdk.run_pipeline(args[0], inputs=json.loads(args[1]), wait_for_completion=False)
    elif scenario == "run_mapped":
        result = sdk.run_pipeline(
            args[0],
            inputs=json.loads(args[1]),
            inputs_mapping=[InputSource(**d) for d in json.loads(args[2])],
            outputs_mapping=[OutputDestination(**d) for d in json.loads(args[3])],
        )
    elif scenario == "run_file":
        data = bytes.fromhex(sys.stdin.read().strip() if args[2] == "-" else args[2])
        result = sdk.run_pipeline(args[0], inputs={args[1]: io.BytesIO(data)})
    elif scenario == "trigger":
        result = sdk.trigger_endpoint(
            args[0], token(args[1]), inputs=json.loads(args[2]), wait_for_completion=args[3] == "true"
        )
    elif scenario == "trigger_file":
        inputs = json.loads(args[4]) if len(args) > 4 else {}
        inputs[args[2]] = bytes.fromhex(args[3])
        result = sdk.trigger_endpoint(args[0], token(args[1]), inputs=inputs)
    elif scenario == "trigger_then_retrieve":
        started = sdk.trigger_endpoint(
            args[0], token(args[1]), inputs=json.loads(args[2]), wait_for_completion=False
        )
        result = {
            "started": started,
            "retrieved": sdk.retrieve_endpoint_results(args[0], started["execution_id"], token(args[1])),
        }
    elif scenario == "retrieve":
        result = sdk.retrieve_endpoint_results(args[0], args[2], token(args[1]))
    elif scenario == "get_pipeline":
        result = sdk.get_pipeline(args[0], wait_for_completion=len(args) > 1 and args[1] == "true")
    elif scenario == "list_pipelines":
        result = sdk.list_pipelines()
    elif scenario == "list_executions":
        result = sdk.list_pipeline_executions(args[0])
    elif scenario == "get_execution":
        result = sdk.get_pipeline_execution(args[0])
    elif scenario == "execution_input":
        result = sdk.get_pipeline_execution_input(args[0], args[1])
    elif scenario == "execution_output":
        result = sdk.get_pipeline_execution_output(args[0], args[1])
    elif scenario == "execution_logs":
        kwargs = json.loads(args[1]) if len(args) > 1 else {}
        for key in ("from", "to"):
            if f"{key}_ms" in kwargs:
                # Half a millisecond in, so the SDK's int(1000 * dt.timestamp()) gives back exactly ms.
                ms = kwargs.pop(f"{key}_ms")
                epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
                kwargs[f"{key}_datetime"] = epoch + datetime.timedelta(milliseconds=ms, microseconds=500)
        result = sdk.get_pipeline_execution_logs(args[0], **kwargs)
    elif scenario == "list_deployments":
        result = sdk.list_deployments()
    elif scenario == "get_deployment":
        # Waiting loops with no sleep until the status is final: bounded, so a status that never is one
        # is the SDK's TimeoutException rather than a hung test.
        wait = len(args) > 1 and args[1] == "true"
        result = sdk.get_deployment(args[0], wait_for_completion=wait, timeout_s=10 if wait else None)
    elif scenario == "create_deployment":
        kwargs = json.loads(args[3]) if len(args) > 3 else {}
        kwargs.setdefault("timeout_s", 10)  # create_deployment waits by default: the same bound
        result = sdk.create_deployment(args[0], args[1], args[2], **kwargs)
    elif scenario == "create_then_trigger":
        # The SDK's documented pattern: the created deployment's "endpoint_token" handed to trigger_endpoint.
        deployment = sdk.create_deployment(args[0], args[1], "endpoint", timeout_s=10)
        result = {
            "endpoint_token": deployment["endpoint_token"],
            "triggered": sdk.trigger_endpoint(args[1], deployment["endpoint_token"], inputs=json.loads(args[2])),
        }
    elif scenario == "delete_deployment":
        result = sdk.delete_deployment(args[0])
    elif scenario == "delete_execution":
        result = sdk.delete_pipeline_execution(args[0])
    elif scenario == "unserved":
        calls = {
            # Calls with no route at all (404 naming the call as one of the Craft AI API the gateway does not serve).
            "who_am_i": lambda: sdk.who_am_i(),
            "generate_new_endpoint_token": lambda: sdk.generate_new_endpoint_token("echo"),
            "list_environment_variables": lambda: sdk.list_environment_variables(),
            "get_pipeline_logs": lambda: sdk.get_pipeline_logs("echo"),
            "get_deployment_logs": lambda: sdk.get_deployment_logs("echo"),
            "update_deployment": lambda: sdk.update_deployment("echo", is_enabled=False),
            "delete_pipeline": lambda: sdk.delete_pipeline("echo"),
            "create_pipeline": lambda: sdk.create_pipeline(
                "echo",
                function_path="src/main.py",
                function_name="run",
                container_config={"repository_url": "git@example.invalid:team/repo.git"},
            ),
        }
        result = {}
        for name, call in calls.items():
            try:
                result[name] = {"result": encode(call())}
            except SdkException as error:
                result[name] = {"error": describe(error)}
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    return result


if __name__ == "__main__":
    try:
        answer = {"result": encode(main())}
    except SdkException as error:
        answer = {"error": describe(error)}
    answer["http"] = exchanges
    print(json.dumps(answer))
