"""Production refuses to start without its secrets; development needs nothing."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _check(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "ALLOWED_HOSTS"}}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({}, "SECRET_KEY and ALLOWED_HOSTS"),
        ({"SECRET_KEY": "x" * 50}, "ALLOWED_HOSTS"),
        ({"ALLOWED_HOSTS": "agira.example.com"}, "SECRET_KEY"),
    ],
)
def test_production_refuses_to_start_without_secret_key_and_allowed_hosts(env, missing):
    result = _check(AGIRA_ENV="production", **env)
    assert result.returncode != 0
    assert f"AGIRA_ENV=production needs {missing} in the environment." in result.stderr


def test_production_starts_when_both_are_set():
    result = _check(AGIRA_ENV="production", SECRET_KEY="k" * 50, ALLOWED_HOSTS="agira.example.com")
    assert result.returncode == 0, result.stderr


def test_an_unknown_environment_name_is_refused():
    result = _check(AGIRA_ENV="staging")
    assert result.returncode != 0
    assert "AGIRA_ENV must be development, production or test" in result.stderr


def test_development_runs_with_no_environment_at_all():
    assert _check(AGIRA_ENV="development").returncode == 0
