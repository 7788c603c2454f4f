"""Checks emitted Azure Batch files against the azure-batch 14.2.0 models.

Usage: azure_batch.py DIR   (the `azure-batch` folder written by `batchwin plan --emit azure-batch`)

`job.json` is a JobAddParameter; every `tasks-*.json` is a TaskAddCollectionParameter. Each is
deserialized with the SDK's own Deserializer and `.validate()`d; the attribute maps are walked
to catch keys the models do not know (the deserializer drops them silently). The SDK does not
enforce the 100-tasks and 1 MB per call limits nor the task id rules: asserted here.
"""

import glob
import json
import os
import re
import sys

from azure.batch import models
from msrest import Deserializer

classes = {k: v for k, v in models.__dict__.items() if isinstance(v, type)}
deserialize = Deserializer(classes)
problems = []


def unknown_keys(value, cls_name, path):
    cls = classes.get(cls_name)
    if cls is None or not isinstance(value, dict):
        return
    keys = {m["key"]: m["type"] for m in cls._attribute_map.values()}
    for k, v in value.items():
        if k not in keys:
            problems.append(f"{path}: unknown key {k!r} for {cls_name}")
            continue
        t = keys[k]
        if t.startswith("[") and isinstance(v, list):
            for i, item in enumerate(v):
                unknown_keys(item, t[1:-1], f"{path}.{k}[{i}]")
        else:
            unknown_keys(v, t, f"{path}.{k}")


def check(path, cls_name):
    body = json.load(open(path))
    obj = deserialize(cls_name, body)
    errors = obj.validate()
    if errors:
        problems.append(f"{path}: {errors}")
    unknown_keys(body, cls_name, os.path.basename(path))
    return body


d = sys.argv[1]
job = check(os.path.join(d, "job.json"), "JobAddParameter")
if not job.get("usesTaskDependencies"):
    problems.append("job.json: usesTaskDependencies must be true")
ids = set()
collections = sorted(glob.glob(os.path.join(d, "tasks-*.json")))
for f in collections:
    body = check(f, "TaskAddCollectionParameter")
    tasks = body["value"]
    if len(tasks) > 100:
        problems.append(f"{f}: {len(tasks)} tasks in one call, more than 100")
    if os.path.getsize(f) > 1_000_000:
        problems.append(f"{f}: larger than 1 MB")
    for t in tasks:
        tid = t["id"]
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", tid):
            problems.append(f"{f}: task id {tid!r} breaks the id rule")
        if tid in ids:
            problems.append(f"{f}: task id {tid!r} used twice")
        ids.add(tid)
        for r in t.get("dependsOn", {}).get("taskIdRanges", []):
            if r["start"] > r["end"]:
                problems.append(f"{f}: task {tid}: empty range {r}")
if not collections:
    problems.append(f"no task collections in {d}")
if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"ok {len(ids)} tasks in {len(collections)} collections")
