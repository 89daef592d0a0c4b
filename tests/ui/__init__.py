"""The Airflow UI in a real browser."""
