"""Checks emitted AWS Batch files against AWS's own API model (botocore).

Usage: aws_batch.py DIR [SETUP]   (DIR: the `aws-batch` folder written by `batchwin plan --emit
aws-batch`; SETUP: the repository's `aws-batch` folder of one-time requests)

Every `*.json` but `job-definition.json` is a SubmitJob request; `job-definition.json` is a
RegisterJobDefinition request (on Fargate, checked for what Fargate requires: a valid vCPU and
memory pair, an execution role, no volumes, the masking key from a secret). In SETUP,
`compute-environment*.json` are CreateComputeEnvironment requests and `job-queues*.json` arrays
of CreateJobQueue requests, whose environments must exist there and share a kind. botocore's ParamValidator checks types, required members and
unknown keys; it does not check enumerations or documented ranges, so this script walks the
model for enum values and asserts the ranges itself. Exits 1 with a report on any problem.
"""

import glob
import json
import os
import sys

import botocore.session
from botocore.validate import ParamValidator

model = botocore.session.get_session().get_service_model("batch")
problems = []


def enums(value, shape, path):
    """Walks value along shape, checking every enum-typed string."""
    if shape.type_name == "structure" and isinstance(value, dict):
        for k, v in value.items():
            if k in shape.members:
                enums(v, shape.members[k], f"{path}.{k}")
    elif shape.type_name == "list" and isinstance(value, list):
        for i, v in enumerate(value):
            enums(v, shape.member, f"{path}[{i}]")
    elif shape.type_name == "map" and isinstance(value, dict):
        for k, v in value.items():
            enums(v, shape.value, f"{path}[{k}]")
    elif shape.type_name == "string" and shape.enum and value not in shape.enum:
        problems.append(f"{path}: {value!r} is not one of {shape.enum}")


def check(path, op_name, req=None):
    req = json.load(open(path)) if req is None else req
    op = model.operation_model(op_name)
    report = ParamValidator().validate(req, op.input_shape)
    if report.has_errors():
        problems.append(f"{path}: {report.generate_report()}")
    enums(req, op.input_shape, os.path.basename(path))
    return req


d = sys.argv[1]
requests = [f for f in sorted(glob.glob(os.path.join(d, "*.json"))) if not f.endswith("job-definition.json")]
if not requests:
    problems.append(f"no SubmitJob requests in {d}")
for f in requests:
    req = check(f, "SubmitJob")
    name = req.get("jobName", "")
    if not (1 <= len(name) <= 128 and all(c.isalnum() or c in "-_" for c in name)):
        problems.append(f"{f}: jobName {name!r} breaks the naming rule")
    size = req.get("arrayProperties", {}).get("size")
    if size is not None and not 2 <= size <= 10000:
        problems.append(f"{f}: array size {size} is outside 2..10000")
    rs = req.get("retryStrategy", {})
    if not 1 <= rs.get("attempts", 1) <= 10:
        problems.append(f"{f}: retry attempts {rs.get('attempts')} outside 1..10")
    if len(rs.get("evaluateOnExit", [])) > 5:
        problems.append(f"{f}: more than 5 evaluateOnExit conditions")
    retry_codes = [c.get("onExitCode") for c in rs.get("evaluateOnExit", []) if c.get("action") == "RETRY"]
    # 3: retryable; 143: SIGTERM of a Spot reclaim (a timeout or TerminateJob is never retried).
    if "3" not in retry_codes or any(c not in ("3", "143", None) for c in retry_codes):
        problems.append(f"{f}: only exit codes 3 and 143 should be retried, got {retry_codes}")
    if len(req.get("dependsOn", [])) > 20:
        problems.append(f"{f}: more than 20 dependsOn")
    if req.get("timeout", {}).get("attemptDurationSeconds", 60) < 60:
        problems.append(f"{f}: timeout under 60 s")
FARGATE_MEMORY = {
    "0.25": [512, 1024, 2048],
    "0.5": list(range(1024, 4097, 1024)),
    "1": list(range(2048, 8193, 1024)),
    "2": list(range(4096, 16385, 1024)),
    "4": list(range(8192, 30721, 1024)),
    "8": list(range(16384, 61441, 4096)),
    "16": list(range(32768, 122881, 8192)),
}
jd = check(os.path.join(d, "job-definition.json"), "RegisterJobDefinition")
if "FARGATE" in jd.get("platformCapabilities", []):
    c = jd["containerProperties"]
    res = {r["type"]: r["value"] for r in c.get("resourceRequirements", [])}
    if int(res.get("MEMORY", 0)) not in FARGATE_MEMORY.get(res.get("VCPU"), []):
        problems.append(f"job-definition.json: {res} is not a Fargate vCPU and memory pair")
    for key in ("executionRoleArn", "jobRoleArn", "fargatePlatformConfiguration", "networkConfiguration"):
        if key not in c:
            problems.append(f"job-definition.json: Fargate needs {key}")
    if c.get("volumes") or c.get("mountPoints"):
        problems.append("job-definition.json: a run-location worker mounts nothing")
    if not any(s["name"] == "BATCHWIN_MASK_KEY" for s in c.get("secrets", [])):
        problems.append("job-definition.json: the masking key is not injected from a secret")
    size = c.get("ephemeralStorage", {}).get("sizeInGiB")
    if size is not None and not 21 <= size <= 200:
        problems.append(f"job-definition.json: ephemeral storage {size} GiB outside 21..200")
    for f in requests:
        cmd = json.load(open(f))["containerOverrides"]["command"]
        if cmd[:1] == ["report"]:
            # The report job reads the ledgers and the plan from the run location.
            if "--config" in cmd or "--plan" not in cmd:
                problems.append(f"{f}: the report reads the run location's plan, no --config: {cmd}")
        elif "--config" in cmd or "--scratch" not in cmd:
            problems.append(f"{f}: a run-location worker takes --scratch and no --config: {cmd}")

if len(sys.argv) > 2:
    setup = sys.argv[2]
    kinds = {}
    for f in sorted(glob.glob(os.path.join(setup, "compute-environment*.json"))):
        ce = check(f, "CreateComputeEnvironment")
        kinds[ce["computeEnvironmentName"]] = ce["computeResources"]["type"]
    queues = sorted(glob.glob(os.path.join(setup, "job-queues*.json")))
    if not kinds or not queues:
        problems.append(f"{setup}: no compute environments or job queues")
    names = set()
    for f in queues:
        for i, q in enumerate(json.load(open(f))):
            check(f"{f}[{i}]", "CreateJobQueue", q)
            names.add(q["jobQueueName"])
            order = [e["computeEnvironment"] for e in sorted(q["computeEnvironmentOrder"], key=lambda e: e["order"])]
            if any(e not in kinds for e in order):
                problems.append(f"{f}[{i}]: environments {order} not all in {sorted(kinds)}")
                continue
            # A queue takes EC2 environments or Fargate ones, never both.
            if len({"FARGATE" if kinds[e].startswith("FARGATE") else "EC2" for e in order}) > 1:
                problems.append(f"{f}[{i}]: mixes EC2 and Fargate environments {order}")
    for f in requests:
        q = json.load(open(f))["jobQueue"]
        if q not in names:
            problems.append(f"{f}: queue {q!r} is not created by {setup}")

if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"ok {len(requests)} SubmitJob requests")
