"""Roll an endpoint back, from the Airflow UI: trigger with Params.

The ``live`` alias of the stack moves to the version you name, or to the one live before
(``previous``), in one alias change: no code, layer, API or stack is redeployed, so it
takes seconds. The task's result (and its log) says which versions and models answer
afterwards. Triggering the same run again changes nothing.

List a stack's versions (model, run, time of each) with
``tdv_airflow.core.rollout.describe_live`` or
``aws lambda list-versions-by-function --function-name <stack>``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import DAG, Param

from tdv_airflow.operators import RollbackOperator

with DAG(
    dag_id="rollback_endpoint",
    description="Move an endpoint's live alias back to an earlier model version.",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["tdv-airflow", "ml", "example"],
    render_template_as_native_obj=True,
    params={
        "stack_name": Param("tdv-iris", "The endpoint's stack, e.g. tdv-iris.", type="string",
                            pattern="^[A-Za-z][A-Za-z0-9-]{0,127}$"),
        "to_version": Param("previous", "A version number such as 3, or previous (the "
                            "version live before the current one).", type="string",
                            pattern="^(previous|[1-9][0-9]*)$"),
    },
) as dag:
    # [START howto_operator_rollback]
    RollbackOperator(task_id="rollback", stack_name="{{ params.stack_name }}",
                     to="{{ params.to_version }}")
    # [END howto_operator_rollback]
