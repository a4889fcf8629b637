"""`manage.py sync_github`: its output and exit codes."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from core.models import GitHubConfiguration, ItemStatus
from core.tests.github_helpers import REPO, TOKEN, link


def run_command(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("sync_github", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def test_a_run_prints_its_summary_and_exits_0(github):
    number = github.add_issue(REPO, title="Broken link")
    github.close_issue(REPO, number)
    mapping = link(number)

    code, out, err = run_command()

    assert code == 0, err
    assert "GitHub sync #" in out
    assert "completed" in out
    assert "items moved to Testing" in out
    assert "requests to GitHub" in out
    mapping.refresh_from_db()
    assert mapping.item.status == ItemStatus.TESTING
    assert TOKEN not in out + err


def test_dry_run_says_so(github):
    link(github.add_issue(REPO))
    code, out, _err = run_command("--dry-run")
    assert code == 0
    assert out.startswith("Dry run (nothing written)")


def test_failures_exit_1_and_are_listed(github):
    number = github.add_issue(REPO)
    github.delete_issue(REPO, number, status=404)
    link(number)

    code, _out, err = run_command("--repo", REPO)

    assert code == 1
    assert f"{REPO}#{number}: not found on GitHub (404)" in err


def test_not_configured_exits_3(github):
    GitHubConfiguration.objects.update(enabled=False)
    code, _out, err = run_command()
    assert code == 3
    assert "disabled" in err


def test_a_rate_limit_exits_4_and_says_when_to_run_again(github):
    link(github.add_issue(REPO))
    github.rate_limit(403, reset_in=3600, times=1)
    code, _out, err = run_command()
    assert code == 4
    assert "run again after" in err


@pytest.mark.parametrize("args", [["--batch-size", "0"], ["--repo", "widgets"]])
def test_bad_arguments_are_refused(db, args):
    with pytest.raises(CommandError):
        call_command("sync_github", *args)


def test_a_pygithub_error_exits_3_with_one_line_and_no_traceback(github):
    GitHubConfiguration.objects.update(base_url=github.enterprise_url)
    github.public_host = "ghe.example.test"
    link(github.add_issue(REPO))
    github.rename_repo(REPO, "acme/gadgets")

    code, out, err = run_command()

    assert code == 3
    assert "Traceback" not in out + err
    reasons = [line for line in err.splitlines() if "ghe.example.test" in line]
    assert len(reasons) == 1
    assert TOKEN not in out + err


def test_a_deleted_repository_exits_1_and_says_so(github):
    link(1, repository="acme/gone")  # no such repository on GitHub

    code, out, err = run_command("--repo", "acme/gone")

    assert code == 1
    assert "repositories that failed" in out
    assert "acme/gone" in err
