"""schemathesis against the live API: every answer is one the OpenAPI document promises.

``teledispatch api`` runs as a subprocess over HTTP on a real database and the tier's private
redis-server, with one configured key. Each operation gets schema-generated requests (valid
and invalid), then a stateful run follows the document's links (a created job's id into its
status, messages and cancel operations). Any server error, undocumented status code, header
or body that does not match the schema fails the test.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.stateful import rule, run_state_machine_as_test
from schemathesis.checks import positive_data_acceptance
from schemathesis.generation import GenerationMode
from schemathesis.generation.stateful.state_machine import APIStateMachine

from teledispatch.api.auth import hash_key
from teledispatch.db.migrate import ensure_schema
from teledispatch.db.tables import metadata
from teledispatch.dev.processes import Proc, cli_argv, spawn
from teledispatch.dev.redis import RedisService, free_port
from tests.support import poll

KEY = "schemathesis-key-5d1e"
AUTH = {"Authorization": f"Bearer {KEY}"}
#: Examples per operation, and stateful scenarios: a few hundred requests each; enough
#: scenarios that every link is followed many times, not once or twice.
EXAMPLES = 40
SCENARIOS = 80

CONFIG = f"""
[accounts.demo]
channel = "nxcloud.sms"
base_url = "http://127.0.0.1:9"
access_key = "ak"
secret = "sk"
app_key = "app"

[api]
keys = [{{name = "fuzz", hash = "{hash_key(KEY)}", rate_per_s = 0}}]
"""


@pytest.fixture
def api_url(redis_service: RedisService, database_url: str, tmp_path: Path) -> Iterator[str]:
    config = tmp_path / "teledispatch.toml"
    config.write_text(CONFIG)
    env = {
        "REDIS_URL": redis_service.url,
        "DATABASE_URL": database_url,
        "TELEDISPATCH_CONFIG": str(config),
    }
    port = free_port()
    log = tmp_path / "api.log"
    argv = cli_argv("api", "--port", str(port), "--log-level", "warning")
    proc: Proc = spawn("api", argv, env, log)
    base = f"http://127.0.0.1:{port}"
    try:
        poll(lambda: _up(proc, base, log), 60, "the API's /livez")
        yield base
    finally:
        proc.stop()


def _up(proc: Proc, base: str, log: Path) -> bool:
    import urllib.request

    assert proc.alive(), f"api exited:\n{log.read_text()[-3000:]}"
    try:
        with urllib.request.urlopen(base + "/livez", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


#: A schema-valid request may still be a 422: the accounts a key may use, whether a number can
#: exist and the channel's rules are checked by the server and cannot be said in JSON Schema.
EXCLUDED = [positive_data_acceptance]

#: PostgreSQL only (the stricter store: it refuses what SQLite keeps, a NUL): both databases
#: would double the run, and the suite keeps schemathesis within two minutes.
pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    # A failure is reported as found: shrinking one through a live server takes minutes.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def load(api_url: str) -> Any:
    schema = schemathesis.openapi.from_url(api_url + "/openapi.json")

    @schema.hook
    def map_case(context: Any, case: Any) -> Any:
        """Every other generated job goes to the configured account with a real number, so
        jobs are created and the links from them are followed."""
        body = case.body
        positive = case.meta is None or case.meta.generation.mode == GenerationMode.POSITIVE
        if (
            positive
            and case.operation.label == "POST /v1/jobs"
            and isinstance(body, dict)
            and len(json.dumps(body, default=str)) % 2 == 0
        ):
            n = len(body.get("recipients") or ()) % 5 + 1
            body.update(account="demo", channel="nxcloud.sms", defaults={"content": "hi"})
            body["recipients"] = [{"phone": f"+86138001380{i:02d}"} for i in range(n)]
            for key in ("expires_at", "ttl_s", "not_before", "idempotency_key"):
                body.pop(key, None)
        return case

    return schema


def test_every_operation_answers_as_documented(api_url: str) -> None:
    schema = load(api_url)
    failures: dict[str, str] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @FUZZ
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                case.call_and_validate(headers=AUTH, timeout=30, excluded_checks=EXCLUDED)

            try:
                run()
            except (Exception, BaseExceptionGroup) as exc:  # every operation's failures
                failures[f"{operation.label} {mode.value}"] = str(exc)[:3000]
    assert not failures, "\n".join(f"{k}:\n{v}" for k, v in failures.items())


def test_links_from_a_created_job_hold(api_url: str, database_url: str) -> None:
    machine: Any = load(api_url).as_state_machine()
    seen: Counter[tuple[str, int]] = Counter()
    ensure_schema(database_url)  # the API makes it on its first request: the reset needs it now
    engine = sa.create_engine(database_url)
    tables = ", ".join(t.name for t in metadata.sorted_tables)

    class Authorised(machine):  # type: ignore[misc]
        def setup(self) -> None:
            # Every scenario starts from an empty database. The rules a step may take depend
            # on earlier answers (a job list with entries or none); with the jobs of earlier
            # scenarios still there, a replayed choice sequence met other rules and Hypothesis
            # stopped with FlakyStrategyDefinition.
            with engine.begin() as conn:
                conn.exec_driver_sql(f"TRUNCATE {tables}")

        def after_call(self, response: Any, case: Any) -> None:
            seen[case.operation.label, response.status_code] += 1

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": AUTH, "timeout": 30}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(response, excluded_checks=EXCLUDED, transport_kwargs=kwargs)

        @rule()
        def rest(self) -> None:
            """A step that is always possible: once schemathesis has spent a scenario's
            budget of calls per source, Hypothesis would otherwise stop with "no progress"."""

    assert isinstance(Authorised(), APIStateMachine)
    try:
        run_state_machine_as_test(
            Authorised,
            settings=settings(FUZZ, max_examples=SCENARIOS, stateful_step_count=8),
        )
    finally:
        engine.dispose()
    # The links were followed: created jobs were read, listed and cancelled through them.
    for label in ("GET /v1/jobs/{job_id}", "GET /v1/jobs/{job_id}/messages"):
        assert seen[label, 200] > 0, seen
    assert seen["POST /v1/jobs/{job_id}/cancel", 200] > 0, seen
