"""Checks emitted Kubernetes manifests against the official OpenAPI schemas (kubernetes-validate,
strict: unknown fields are errors).

Usage: k8s.py DIR   (the `k8s` folder written by `batchwin plan --emit k8s`)

Every `*.json` in DIR is validated against the newest Kubernetes version kubernetes-validate
ships and against 1.29, the oldest whose Jobs have `backoffLimitPerIndex` enabled (beta, on by
default; GA in 1.33), which batchwin's Indexed Jobs need for per-slice retries. Against the
oldest version shipped, the only complaints allowed are about that field, so any other field an
older API does not know is still caught. Exits 1 with a report on any problem.
"""

import glob
import json
import os
import sys

from kubernetes_validate import utils

NEEDED_NEWER_FIELDS = ("backoffLimitPerIndex",)
versions = sorted(set(utils.all_versions()), key=lambda v: tuple(int(x) for x in v.split(".")))
oldest, newest = versions[0], versions[-1]
problems = []
files = sorted(glob.glob(os.path.join(sys.argv[1], "*.json")))
if not files:
    problems.append(f"no manifests in {sys.argv[1]}")
for f in files:
    doc = json.load(open(f))
    for v in (newest, "1.29.0"):
        try:
            utils.validate(doc, v, strict=True)
        except utils.ValidationError as e:
            problems.append(f"{f} against {v}: {e.message} at {list(e.path)}")
    try:
        utils.validate(doc, oldest, strict=True)
    except utils.ValidationError as e:
        if not any(field in e.message for field in NEEDED_NEWER_FIELDS):
            problems.append(f"{f} against {oldest}: {e.message} at {list(e.path)}")
        else:
            # Validate again without the field the old API lacks, for what else it may say.
            spec = dict(doc.get("spec", {}))
            for field in NEEDED_NEWER_FIELDS:
                spec.pop(field, None)
            try:
                utils.validate(dict(doc, spec=spec), oldest, strict=True)
            except utils.ValidationError as e2:
                problems.append(f"{f} against {oldest}: {e2.message} at {list(e2.path)}")
if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"ok {len(files)} manifests against {oldest} (but {', '.join(NEEDED_NEWER_FIELDS)}), 1.29.0 and {newest}")
