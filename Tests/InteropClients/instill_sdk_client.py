#!/usr/bin/env python3
"""The unmodified Instill Python SDK (instill-sdk 0.18.0, .venv-instill) as a test peer.

Usage: instill_sdk_client.py SCENARIO PORT [ARGS...]; TG_TOKEN is the API token, TG_REQUESTER the SDK's
`requester_id` (unset: none). Prints one line `TG-RESULT <json>` on stdout. Any gRPC error makes the SDK call
os._exit(1) (CLIENTS.md §2.3): the exit status and the SDK's log line are then the result.

Scenarios:
  trigger NS PIPE             trigger() with data [{"prompt": "hello"}]; also the metadata the client sends and
                              the requester's uid as Python's uuid5 computes it
  get_pipeline NS PIPE        get_pipeline(): the GetNamespacePipelineResponse as a dict
  get_pipeline_release NS PIPE RELEASE
  list_pipeline_releases NS PIPE [PAGE_SIZE [PAGE_TOKEN]]
                              list_pipeline_releases(total_size=PAGE_SIZE, next_page_token=PAGE_TOKEN): the
                              ListNamespacePipelineReleasesResponse as a dict (totalSize and nextPageToken always)
  list_pipelines NS [PAGE_SIZE [PAGE_TOKEN]]
                              list_pipelines(namespace_id=NS, total_size=PAGE_SIZE, next_page_token=PAGE_TOKEN):
                              the ListNamespacePipelinesResponse as a dict (totalSize and nextPageToken always)
  list_pipeline_runs NS PIPE [PAGE [PAGE_SIZE]]
                              list_pipeline_runs(page=PAGE, total_size=PAGE_SIZE): the ListPipelineRunsResponse as
                              a dict (every field, enums by name), and fields read from the message itself
  tls-defaults                the SDK's defaults (secure=True: TLS with the roots GRPC_DEFAULT_SSL_ROOTS_FILE_PATH
                              names, target localhost:PORT): trigger, trigger_release, trigger_async + get_operation
                              (asked until done, bounded) and trigger_with_stream on the demo namespace
"""
import json
import os
import sys
import time
import uuid

from google.protobuf.json_format import MessageToDict
from instill.clients import init_pipeline_client


def tls_defaults(port):
    """Every trigger path of the SDK with every argument but the token and the target left at its default."""
    client = init_pipeline_client(api_token=os.environ.get("TG_TOKEN", ""), url="localhost:%s" % port)
    result = {"trigger": client.trigger(namespace_id="demo", pipeline_id="echo", data=[{"prompt": "hello"}])}
    release = client.trigger_release(namespace_id="demo", pipeline_id="upper", release_id="v1", data=[{"prompt": "r"}])
    result["trigger_release"] = MessageToDict(release)
    started = client.trigger_async(namespace_id="demo", pipeline_id="echo", data=[{"prompt": "later"}])
    result["trigger_async"] = MessageToDict(started)
    # The SDK has no poll loop (CLIENTS.md §2.4): ask until done, bounded.
    deadline = time.monotonic() + 20
    while True:
        got = client.get_operation(operation_id=started.operation.name.split("/")[-1])
        if got.operation.done or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    result["get_operation"] = MessageToDict(got)
    stream = client.trigger_with_stream(namespace_id="demo", pipeline_id="echo", data=[{"prompt": "s"}])
    result["trigger_with_stream"] = [MessageToDict(message) for message in stream]
    return result


def main():
    scenario, port = sys.argv[1], sys.argv[2]
    args = sys.argv[3:]
    if scenario == "tls-defaults":
        print("TG-RESULT " + json.dumps(tls_defaults(port)), flush=True)
        return
    client = init_pipeline_client(
        api_token=os.environ.get("TG_TOKEN", ""),
        requester_id=os.environ.get("TG_REQUESTER", ""),
        url="127.0.0.1:%s" % port,
        secure=False,
    )
    if scenario == "trigger":
        out = client.trigger(namespace_id=args[0], pipeline_id=args[1], data=[{"prompt": "hello"}])
        requester = os.environ.get("TG_REQUESTER", "")
        result = {
            "response": out,
            "metadata": [list(kv) for kv in client.metadata],
            # The uid the gateway documents for a namespace (UUIDv5, URL namespace, "namespaces/{id}"), computed
            # here by Python's own uuid module.
            "expected_uid": str(uuid.uuid5(uuid.NAMESPACE_URL, "namespaces/" + requester)) if requester else None,
        }
    elif scenario == "trigger_async":
        result = MessageToDict(
            client.trigger_async(namespace_id=args[0], pipeline_id=args[1], data=[{"prompt": "later"}])
        )
    elif scenario == "get_pipeline":
        result = MessageToDict(client.get_pipeline(namespace_id=args[0], pipeline_id=args[1]))
    elif scenario == "get_pipeline_release":
        result = MessageToDict(
            client.get_pipeline_release(namespace_id=args[0], pipeline_id=args[1], release_id=args[2])
        )
    elif scenario == "list_pipeline_releases":
        kwargs = {}
        if len(args) > 2:
            kwargs["total_size"] = int(args[2])  # the SDK's name for page_size
        if len(args) > 3:
            kwargs["next_page_token"] = args[3]
        result = MessageToDict(
            client.list_pipeline_releases(namespace_id=args[0], pipeline_id=args[1], **kwargs),
            including_default_value_fields=True,  # protobuf 4.25 (instill-sdk pins it)
        )
    elif scenario == "list_pipelines":
        kwargs = {}
        if len(args) > 1:
            kwargs["total_size"] = int(args[1])  # the SDK's name for page_size
        if len(args) > 2:
            kwargs["next_page_token"] = args[2]
        result = MessageToDict(
            client.list_pipelines(namespace_id=args[0], **kwargs), including_default_value_fields=True
        )
    elif scenario == "list_pipeline_runs":
        kwargs = {}
        if len(args) > 2:
            kwargs["page"] = int(args[2])
        if len(args) > 3:
            kwargs["total_size"] = int(args[3])  # the SDK's name for page_size
        response = client.list_pipeline_runs(namespace_id=args[0], pipeline_id=args[1], **kwargs)
        result = MessageToDict(response, including_default_value_fields=True)
        # What a program reads off the message: attributes, the enum as a number, timestamps as datetimes.
        result["read"] = [
            {
                "uid": run.pipeline_run_uid,
                "status": int(run.status),
                "start": run.start_time.ToDatetime().isoformat(),
                "complete": run.complete_time.ToDatetime().isoformat() if run.HasField("complete_time") else None,
                "error": run.error,
                "requester": run.requester_id,
                "runner": run.runner_id,
                "inputs": [dict(s) for s in run.inputs],
            }
            for run in response.pipeline_runs
        ]
    else:
        raise SystemExit("unknown scenario %s" % scenario)
    print("TG-RESULT " + json.dumps(result), flush=True)


main()
