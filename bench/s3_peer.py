"""The peer for `scripts/bench --transfer`: boto3 moving the same files to or from the same S3
API server with a pool of threads, timed the same way.

    s3_peer.py upload DIR BUCKET PREFIX THREADS      every file below DIR to s3://BUCKET/PREFIX/REL
    s3_peer.py download BUCKET PREFIX DIR THREADS    every object below PREFIX to DIR/REL

Endpoint and credentials come from AWS_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
AWS_REGION. Prints `seconds N` and `files N`.
"""
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config


def client(threads):
    return boto3.client(
        "s3",
        endpoint_url=os.environ["AWS_ENDPOINT"],
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(max_pool_connections=max(10, threads)),
    )


def upload(root, bucket, prefix, threads):
    s3 = client(threads)
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    files = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda p: s3.upload_file(p, bucket, f"{prefix}/{os.path.relpath(p, root)}"), files))
    return time.perf_counter() - t0, len(files)


def download(bucket, prefix, root, threads):
    s3 = client(threads)
    t0 = time.perf_counter()
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        keys += [o["Key"] for o in page.get("Contents", [])]

    def get(k):
        dest = os.path.join(root, os.path.relpath(k, prefix))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        s3.download_file(bucket, k, dest)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(get, keys))
    return time.perf_counter() - t0, len(keys)


if __name__ == "__main__":
    if sys.argv[1] == "upload":
        secs, n = upload(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        secs, n = download(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    print(f"seconds {secs:.3f}")
    print(f"files {n}")
