"""Multipart upload of a large artifact: parts sent by 1 thread against 4 (prints ratios,
no asserts).

Against the embedded moto server on loopback, which stores every part in one Python
process: it shows the client's side (hashing, copying, HTTP) and the cost of a thread
pool, not S3's per-connection bandwidth, which is what parallel parts gain most from on
AWS. Also the single PutObject of the same bytes, for reference.

Run: ``.venv/bin/python bench/bench_multipart.py [--mib 128] [--runs 3]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import boto3

from tdv_airflow.core.multipart import PART_SIZE, upload_multipart
from tdv_airflow.local.aws import LocalAws


def timed(runs: int, step: Callable[[int], None]) -> float:
    """Median seconds of ``runs`` calls of ``step(run)``."""
    times = []
    for run in range(runs):
        started = time.perf_counter()
        step(run)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    """Upload ``--mib`` MiB by one PutObject and in parts by 1 and 4 threads."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    data = os.urandom(args.mib * 1024 * 1024)
    with LocalAws() as aws:
        s3 = boto3.client("s3", endpoint_url=aws.endpoint_url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="bench-multipart")
        args_ = {"Metadata": {"sha256": "x"}, "ServerSideEncryption": "AES256"}
        put = timed(args.runs, lambda run: s3.put_object(
            Bucket="bench-multipart", Key=f"put/{run}", Body=data, ChecksumAlgorithm="SHA256",
            **args_))
        results = {}
        for workers in (1, 4):
            def parts(run: int, workers: int = workers) -> None:
                upload_multipart(s3, "bench-multipart", f"parts{workers}/{run}", data, args_,
                                 workers=workers)

            results[workers] = timed(args.runs, parts)
    mb = args.mib * 1.048576
    print(f"{args.mib} MiB, parts of {PART_SIZE >> 20} MiB, median of {args.runs} runs")
    print(f"  one PutObject      {put:6.2f} s  {mb / put:7.1f} MB/s")
    for workers, seconds in results.items():
        print(f"  parts, {workers} thread(s) {seconds:6.2f} s  {mb / seconds:7.1f} MB/s")
    print(f"  4 threads / 1 thread: {results[4] / results[1]:.2f} of the time")


if __name__ == "__main__":
    main()
