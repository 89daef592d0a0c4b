"""The framework-free deployment core: clients and credentials, validation, naming,
caches, pickling, deterministic zips, artifacts, dependency layers, the content-addressed
store, the template, IAM documents, stacks, retention and the deployment steps.

It imports boto3 and dill (inside functions), never Airflow, :mod:`tdv_airflow.local`
or :mod:`tdv_airflow.endpoint`; only :mod:`tdv_airflow.exceptions` from outside itself.
"""
