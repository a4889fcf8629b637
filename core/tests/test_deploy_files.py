"""The production compose file parses and refers only to services it defines.

PyYAML is not a dependency of Agira: the test is skipped where it is missing
(`python3 -c "import yaml"` of the system usually has it)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_docker_compose_parses_and_names_only_existing_services():
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"db", "weaviate", "app", "worker", "init"} <= set(services)
    for name, service in services.items():
        assert "healthcheck" in service, name
        for dependency in service.get("depends_on", {}):
            assert dependency in services, (name, dependency)
    for name in ("app", "worker"):
        assert services[name]["depends_on"]["init"] == {
            "condition": "service_completed_successfully"
        }
    assert "sync_weaviate" in " ".join(services["init"]["command"])
    assert "text2vec" in services["weaviate"]["environment"]["ENABLE_MODULES"]
    for volume in (v.split(":")[0] for s in services.values() for v in s.get("volumes", [])):
        assert volume.startswith("/") or volume in compose["volumes"], volume
