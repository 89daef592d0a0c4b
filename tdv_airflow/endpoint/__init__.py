"""Calling a deployed endpoint the way its auth mode needs, and verifying such requests
(for the local server). May import :mod:`tdv_airflow.core`; never Airflow nor
:mod:`tdv_airflow.local`.
"""
