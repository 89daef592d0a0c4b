"""SnapStart: the request processor registers an after-restore hook with the runtime's
``snapshot_restore_py`` (Python 3.12+ managed runtimes), which drops the snapshot's S3
client and reseeds ``random``; without that module (anywhere else) nothing is registered."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from testkit import lambda_fixtures as lf

SCRIPT = textwrap.dedent(f"""
    import json, random, sys, types
    hooks = []
    if sys.argv[1] == "snapstart":  # what Lambda's 3.12+ runtime provides
        runtime = types.ModuleType("snapshot_restore_py")
        runtime.register_after_restore = hooks.append
        sys.modules["snapshot_restore_py"] = runtime
    sys.path.insert(0, {str(lf.LAMBDA_SRC)!r})
    import lbd_request_processor as m
    before = m._s3_client()
    random.seed(7)
    snapshot = random.random()
    random.seed(7)
    for hook in hooks:  # the runtime calls them after a restore
        hook()
    print(json.dumps({{"hooks": len(hooks), "client_kept": m._s3_client() is before,
                      "same_random": random.random() == snapshot}}))
""")


def _run(mode: str) -> dict[str, object]:
    env = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "k",
           "AWS_SECRET_ACCESS_KEY": "s", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], env=env, capture_output=True,
                          text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_after_a_snapstart_restore_the_client_is_new_and_random_reseeded() -> None:
    assert _run("snapstart") == {"hooks": 1, "client_kept": False, "same_random": False}


def test_without_the_snapstart_runtime_nothing_is_registered() -> None:
    assert _run("plain") == {"hooks": 0, "client_kept": True, "same_random": True}
