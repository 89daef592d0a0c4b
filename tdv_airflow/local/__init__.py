"""Local tooling: the embedded AWS (moto with small, documented fidelity fixes) and the
local runner of a deployed function (find, fetch and lay out, events, run, serve, CLI).
May import :mod:`tdv_airflow.core` and :mod:`tdv_airflow.endpoint`; never Airflow.
"""
