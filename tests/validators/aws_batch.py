"""Checks emitted AWS Batch files against AWS's own API model (botocore).

Usage: aws_batch.py DIR   (the `aws-batch` folder written by `batchwin plan --emit aws-batch`)

Every `*.json` but `job-definition.json` is a SubmitJob request; `job-definition.json` is a
RegisterJobDefinition request. botocore's ParamValidator checks types, required members and
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


def check(path, op_name):
    req = json.load(open(path))
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
    if "3" not in retry_codes or any(c not in ("3", None) for c in retry_codes):
        problems.append(f"{f}: only exit code 3 should be retried, got {retry_codes}")
    if len(req.get("dependsOn", [])) > 20:
        problems.append(f"{f}: more than 20 dependsOn")
    if req.get("timeout", {}).get("attemptDurationSeconds", 60) < 60:
        problems.append(f"{f}: timeout under 60 s")
check(os.path.join(d, "job-definition.json"), "RegisterJobDefinition")

if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"ok {len(requests)} SubmitJob requests")
