"""docker-compose.yml, checked without Docker.

No Docker engine runs here (nor in CI), so these tests read the compose file and the
files it mounts, and check them with the tools that do exist: the Compose JSON schema
(vendored in tests/data, see compose_spec.NOTICE.md), PyYAML, and Erlang plus the
Debian RabbitMQ's own config schema for the two RabbitMQ config files.
"""

from __future__ import annotations

import copy
import glob
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from workqueue_lab import settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SCHEMA_FILE = Path(__file__).resolve().parent / "data" / "compose_spec.json"
# Debian's rabbitmq-server ships its configuration schema and cuttlefish, the parser
# RabbitMQ itself uses for rabbitmq.conf. .ci/run installs that package.
RABBIT_SCHEMA_GLOB = "/usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins/rabbit-*/priv/schema/rabbit.schema"

ADVANCED_CONFIG_TARGET = "/etc/rabbitmq/advanced.config"
LOOPBACK = "127.0.0.1"


# --- helpers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{COMPOSE_FILE.name} must be a YAML mapping"
    return data


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    assert set(compose["services"]) >= {"rabbitmq", "lab"}, "expected services 'rabbitmq' and 'lab'"
    return compose["services"]


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def host_ip_of(port: str | int | dict) -> str | None:
    """The host address a published port binds to; None means every interface."""
    if isinstance(port, dict):
        return port.get("host_ip")
    spec = str(port).split("/", 1)[0]  # drop "/tcp", "/udp"
    if spec.startswith("["):  # "[::1]:80:80"
        return spec[1 : spec.index("]")]
    parts = spec.split(":")
    return parts[0] if len(parts) == 3 else None


def bind_mounts(service: dict) -> dict[str, Path]:
    """Container path -> host path, for every bind mount of a file or folder of the repo."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") != "bind":
                continue
            source, target = volume["source"], volume["target"]
        else:
            source, target = str(volume).split(":")[:2]
            if not source.startswith((".", "/", "~")):
                continue  # a named volume
        mounts[target] = (COMPOSE_FILE.parent / source).resolve()
    return mounts


def rabbitmq_conf_source(services: dict) -> Path:
    mounts = bind_mounts(services["rabbitmq"])
    confs = [
        source
        for target, source in mounts.items()
        if target == "/etc/rabbitmq/rabbitmq.conf" or re.fullmatch(r"/etc/rabbitmq/conf\.d/[^/]+\.conf", target)
    ]
    assert len(confs) == 1, f"expected one rabbitmq.conf mount (conf.d/*.conf or rabbitmq.conf), got {mounts}"
    return confs[0]


def parse_rabbitmq_conf(path: Path) -> dict[str, str]:
    """rabbitmq.conf's sysctl-like format: `key = value`, comments on their own lines."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = (part.strip() for part in line.partition("="))
        where = f"{path.name}:{number}"
        assert sep, f"{where}: expected 'key = value', got {raw!r}"
        assert re.fullmatch(r"[a-z0-9_$-]+(\.[a-z0-9_$-]+)*", key), f"{where}: malformed key {key!r}"
        assert value, f"{where}: {key} has no value"
        assert "#" not in value, f"{where}: comments must be on their own line"
        assert key not in values, f"{where}: {key} set twice"
        values[key] = value
    return values


def run_erl(code: str, *args: str, code_paths: list[str] | None = None) -> subprocess.CompletedProcess:
    erl = shutil.which("erl")
    assert erl, "erl (Erlang/OTP) is needed to check RabbitMQ config files: install rabbitmq-server"
    command = [erl, "-noshell"]
    if code_paths:
        command += ["-pa", *code_paths]
    command += ["-eval", code, "-extra", *args]
    env = {**os.environ, "ERL_CRASH_DUMP_SECONDS": "0"}  # never leave erl_crash.dump behind
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, check=False)


# --- the compose file ----------------------------------------------------------------


def test_compose_file_matches_the_compose_schema(compose: dict) -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft201909Validator.check_schema(schema)
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(map(str, e.absolute_path)))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path)) or '<top>'}: {e.message}" for e in errors)


def test_schema_check_is_not_vacuous(compose: dict) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["rabbitmq"]["imagee"] = broken["services"]["rabbitmq"].pop("image")
    broken["services"]["lab"]["depends_on"]["rabbitmq"]["condition"] = "service_ready"
    validator = jsonschema.Draft201909Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    assert not validator.is_valid(broken)


def test_rabbitmq_image_is_the_projects_image(services: dict) -> None:
    assert services["rabbitmq"]["image"] == settings.RABBITMQ_IMAGE


def test_every_published_port_binds_loopback_only(services: dict) -> None:
    for name, service in services.items():
        assert service.get("network_mode") != "host", f"{name}: network_mode host publishes everything"
        for port in service.get("ports", []):
            assert host_ip_of(port) == LOOPBACK, f"{name}: port {port!r} must be bound to {LOOPBACK}"


def test_expected_ports_are_published(services: dict) -> None:
    def published(service: dict) -> set[str]:
        hosts = set()
        for port in service.get("ports", []):
            parts = str(port).split("/", 1)[0].rsplit(":", 2)
            hosts.add(parts[-2] if len(parts) > 1 else parts[0])
        return hosts

    assert published(services["rabbitmq"]) == {"5672", "15672"}
    assert published(services["lab"]) == {"8888"}


def test_rabbitmq_has_a_ping_healthcheck(services: dict) -> None:
    check = services["rabbitmq"].get("healthcheck")
    assert check and not check.get("disable"), "rabbitmq needs a healthcheck for depends_on: service_healthy"
    test = check["test"]
    words = test.split() if isinstance(test, str) else list(test)
    assert words[0] in ("CMD", "CMD-SHELL"), words
    assert "rabbitmq-diagnostics" in " ".join(words) and "ping" in words, words


def test_lab_waits_for_a_healthy_rabbitmq(services: dict) -> None:
    depends = services["lab"]["depends_on"]
    assert isinstance(depends, dict), "use the long depends_on form with a condition"
    assert depends["rabbitmq"]["condition"] == "service_healthy"


def test_lab_environment_uses_the_projects_variables(services: dict) -> None:
    env = environment(services["lab"])
    known = {value for key, value in vars(settings).items() if key.startswith("ENV_")}
    unknown = {key for key in env if key.startswith("WORKQUEUE_LAB_")} - known
    assert not unknown, f"not defined in workqueue_lab/settings.py: {sorted(unknown)}"
    if settings.ENV_BROKER in env:
        assert env[settings.ENV_BROKER] in settings.BROKER_PATHS


def test_lab_urls_point_at_the_rabbitmq_service_with_its_user(services: dict) -> None:
    env = environment(services["lab"])
    conf = parse_rabbitmq_conf(rabbitmq_conf_source(services))
    amqp = urlsplit(env[settings.ENV_URL])
    mgmt = urlsplit(env[settings.ENV_MGMT_URL])
    assert (amqp.scheme, amqp.hostname, amqp.port, amqp.path) == ("amqp", "rabbitmq", 5672, "/%2F")
    assert (mgmt.scheme, mgmt.hostname, mgmt.port) == ("http", "rabbitmq", 15672)
    for url in (amqp, mgmt):
        assert (url.username, url.password) == (conf["default_user"], conf["default_pass"])


def test_lab_image_builds_from_the_repo(services: dict) -> None:
    build = services["lab"]["build"]
    context = (COMPOSE_FILE.parent / build["context"]).resolve()
    dockerfile = context / build["dockerfile"]
    assert context == ROOT
    assert dockerfile.is_file(), dockerfile
    text = dockerfile.read_text(encoding="utf-8")
    # Debian 13, whose rabbitmq-server is the 4.0 release CI runs the course on (the lab's private nodes)
    assert re.search(r"^FROM python:3\.11-slim-trixie\b", text, re.MULTILINE), "python:3.11-slim-trixie"
    assert re.search(r"apt-get install -y --no-install-recommends rabbitmq-server", text), text
    assert "pip install -r requirements.txt" in text and "pip install --no-deps -e ." in text
    cmd = re.search(r"^CMD\s+(\[.*\])\s*$", text, re.MULTILINE)
    assert cmd, "CMD in exec form"
    argv = json.loads(cmd.group(1))
    # The container starts JupyterLab the way `make lab` does, listening beyond the container's loopback
    # (Compose publishes it on the host's 127.0.0.1 only).
    assert argv[0] == "jupyter/start-lab" and (ROOT / argv[0]).is_file(), argv
    env = dict(re.findall(r"\b(VENV|LAB_IP|LAB_PORT)=(\S+)", text))
    assert env == {"VENV": "/usr/local", "LAB_IP": "0.0.0.0", "LAB_PORT": "8888"}, env
    assert "jupyter/overrides.json" in text, "the image must install the course's JupyterLab settings"


# --- the files it mounts -------------------------------------------------------------


def test_every_bind_mount_exists(services: dict) -> None:
    for name, service in services.items():
        for target, source in bind_mounts(service).items():
            assert source.exists(), f"{name}: {target} is mounted from {source}, which does not exist"
            assert ROOT in source.parents, f"{name}: {source} is outside the repository"


def test_rabbitmq_conf_parses_and_sets_the_lab_user(services: dict) -> None:
    conf = parse_rabbitmq_conf(rabbitmq_conf_source(services))
    assert conf["default_user"] not in ("", "guest"), "guest only logs in from localhost; define a user"
    assert conf["default_pass"]
    assert not any(key.startswith("loopback_users") for key in conf), "do not open guest to the network"
    assert conf["vm_memory_high_watermark.absolute"] == "512MiB"


def test_rabbitmq_conf_is_accepted_by_rabbitmqs_own_schema(services: dict) -> None:
    schemas = sorted(glob.glob(RABBIT_SCHEMA_GLOB))
    assert schemas, f"no RabbitMQ config schema at {RABBIT_SCHEMA_GLOB}: install Debian's rabbitmq-server"
    schema = Path(schemas[-1])
    ebins = sorted(glob.glob(str(schema.parents[3] / "*" / "ebin")))
    code = """
        [Schema, Conf] = init:get_plain_arguments(),
        case cuttlefish_generator:map(cuttlefish_schema:files([Schema]), cuttlefish_conf:files([Conf])) of
            {error, Phase, Errors} ->
                io:format("REJECTED in ~p: ~p~n", [Phase, Errors]), halt(1);
            Config ->
                {rabbit, Rabbit} = lists:keyfind(rabbit, 1, Config),
                Keys = [default_user, default_pass, vm_memory_high_watermark],
                io:format("~0p~n", [[{K, proplists:get_value(K, Rabbit)} || K <- Keys]]),
                halt(0)
        end.
    """
    result = run_erl(code, str(schema), str(rabbitmq_conf_source(services)), code_paths=ebins)
    assert result.returncode == 0, result.stdout + result.stderr
    conf = parse_rabbitmq_conf(rabbitmq_conf_source(services))
    mapped = result.stdout.strip().splitlines()[-1]
    assert f'{{default_user,<<"{conf["default_user"]}">>}}' in mapped, mapped
    assert "{vm_memory_high_watermark,{absolute," in mapped, mapped


def test_advanced_config_is_an_erlang_term_with_a_1s_channel_tick(services: dict) -> None:
    mounts = bind_mounts(services["rabbitmq"])
    assert ADVANCED_CONFIG_TARGET in mounts, f"mount docker/rabbitmq/advanced.config at {ADVANCED_CONFIG_TARGET}"
    code = """
        [Path] = init:get_plain_arguments(),
        case file:consult(Path) of
            {ok, [Config]} when is_list(Config) ->
                AppEnvs = lists:all(fun({App, Env}) -> is_atom(App) andalso is_list(Env);
                                       (_) -> false end, Config),
                Rabbit = proplists:get_value(rabbit, Config, []),
                io:format("~p ~p~n", [AppEnvs, proplists:get_value(channel_tick_interval, Rabbit)]),
                halt(0);
            Other ->
                io:format("NOT ONE ERLANG TERM: ~p~n", [Other]), halt(1)
        end.
    """
    result = run_erl(code, str(mounts[ADVANCED_CONFIG_TARGET]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == ["true", "1000"], result.stdout


def test_a_terminal_program_joins_the_container_a_kernel_started(tmp_path, monkeypatch) -> None:
    """The testcontainers way: the kernel that started a container leaves its address in the lab's home, and
    worker.py in a terminal (another process, same user) finds it while that kernel lives and the port answers.
    No Docker engine here: the address written is the system broker's, which stands in for the container."""
    import subprocess as sp
    import sys

    from workqueue_lab.broker import discovery

    monkeypatch.setenv(settings.ENV_HOME, str(tmp_path))
    for name in (settings.ENV_URL, settings.ENV_BROKER):
        monkeypatch.delenv(name, raising=False)
    assert discovery.docker_broker_of_this_user() is None  # no kernel started one
    kernel = sp.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # stands in for the notebook's kernel
    try:
        monkeypatch.setattr(os, "getpid", lambda: kernel.pid)
        discovery._write_docker_state(settings.LOCAL_URL, "http://guest:guest@127.0.0.1:15672")
        monkeypatch.undo()
        monkeypatch.setenv(settings.ENV_HOME, str(tmp_path))
        assert oct(discovery.docker_state_file().stat().st_mode & 0o777) == "0o600"
        program = sp.run([sys.executable, "-c", "from workqueue_lab.broker import discovery as d; "
                          "print(d._locate('docker').url.split('@')[1])"],
                         env=dict(os.environ, **{settings.ENV_HOME: str(tmp_path)}), capture_output=True, text=True,
                         timeout=60)
        assert program.stdout.strip() == "127.0.0.1:5672/%2F", program.stderr
    finally:
        kernel.kill()
        kernel.wait()
    assert discovery.docker_broker_of_this_user() is None  # that kernel is gone: its container went with it
