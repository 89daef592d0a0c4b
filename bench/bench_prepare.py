"""prepare_deployment() on a 200 MB model against a bare boto3 upload of the same bytes.

Run inside the project's venv:  python bench/bench_prepare.py [--mb 200] [--repeat 3]

Prints the median seconds of each, their ratio, and the bytes a second, unchanged
prepare_deployment() sends (0 expected: artifacts are content-addressed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from tdv_airflow import Deploy, UserAwsAuth
from tdv_airflow.local.aws import LocalAws


def prepro(payload: dict) -> list:
    return [payload["x"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    data = os.urandom(args.mb * 1024 * 1024)
    with LocalAws() as aws:
        auth = UserAwsAuth("testing", "testing", endpoint_url=aws.endpoint_url)
        s3 = auth.session(aws.region).client("s3", endpoint_url=aws.endpoint_url)
        bare, prep, prep_sha, second_bytes = [], [], [], []
        for i in range(args.repeat):
            aws.reset()
            s3.create_bucket(Bucket="bench")
            t0 = time.perf_counter()
            s3.put_object(Bucket="bench", Key=f"bare/{i}.bin", Body=data)
            bare.append(time.perf_counter() - t0)
            s3.put_object(Bucket="bench", Key="model.bin", Body=data)
            s3.put_object(Bucket="bench", Key="model-sha.bin", Body=data,
                          ChecksumAlgorithm="SHA256")
            d = Deploy("bench", "model.bin", prepro, auth, region=aws.region)
            t0 = time.perf_counter()
            d.prepare_deployment()
            prep.append(time.perf_counter() - t0)
            ds = Deploy("bench", "model-sha.bin", prepro, auth, region=aws.region)
            t0 = time.perf_counter()
            ds.prepare_deployment()
            prep_sha.append(time.perf_counter() - t0)
            first_sent = d.last_prepare.bytes_sent if d.last_prepare else -1
            d.prepare_deployment()
            second_bytes.append(d.last_prepare.bytes_sent if d.last_prepare else -1)
        b, p = statistics.median(bare), statistics.median(prep)
        print(f"model size:                          {args.mb} MB")
        print(f"bare boto3 put_object (median):      {b:.3f} s")
        print(f"prepare_deployment() (median):       {p:.3f} s "
              f"(first call sent {first_sent} bytes of artifacts)")
        print(f"ratio prepare / bare upload:         {p / b:.2f}")
        ps = statistics.median(prep_sha)
        print(f"prepare_deployment(), model stored with a SHA-256 checksum: {ps:.3f} s, "
              f"ratio {ps / b:.2f} (digest read from S3, model not streamed)")
        print(f"bytes sent by a 2nd, unchanged call: {max(second_bytes)}")


if __name__ == "__main__":
    main()
