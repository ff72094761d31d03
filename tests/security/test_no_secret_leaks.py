"""The token never appears (issue 10): every output of runs that exercise failures is searched for
every secret the configuration holds and every access token the client-credentials grant issued.

One simulator (``shopsync simulate``, six shops) serves:

* ``faulty``     static token; 5xx, 429, slow answers past ``request_timeout``, dropped connections,
                 truncated and malformed bodies, cut bulk downloads;
* ``badtoken``   a wrong static token (401, the shop parks);
* ``noscope``    the right token, the shop answering 403 (missing scope);
* ``granted``    client credentials through :class:`GrantProxy` (the grant succeeds; 5xx faults);
* ``badsecret``  client credentials with a wrong secret (401 ``invalid_client``);
* ``tokendown``  client credentials, the token endpoint answering 503.

Captured and searched: ``shopsync check``; ``shopsync sync`` at debug level in JSON and in text
(stdout and stderr, tracebacks included) and one killed at a crash point; ``shopsync run`` in JSON
and in text (both streams, plus ``/metrics``, ``/status``, ``/healthz``, ``/readyz`` while it
runs); ``shopsync status`` (table and ``--json``); every file written (state database with its
WAL, JSONL sink, work directory). Searched for: each secret as is, URL-encoded, JSON-escaped, and a
prefixed token's random part alone.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path

from tests.security.harness import (
    SIM_CLIENT_ID,
    Daemon,
    GrantProxy,
    Output,
    Simulator,
    dump_outputs,
    files_under,
    http_get,
    leaks,
    new_client_secret,
    new_token,
    poll,
    run_shopsync,
)

TOKEN_ENV = "SECURITY_TEST_TOKEN"
WRONG_TOKEN_ENV = "SECURITY_TEST_WRONG_TOKEN"

#: config name → simulator shop, how it authenticates
SHOPS = {
    "faulty": ("sim", "token"),
    "badtoken": ("sim2", "wrong-token"),
    "noscope": ("sim3", "token"),
    "granted": ("sim4", "grant"),
    "badsecret": ("sim5", "bad-grant"),
    "tokendown": ("sim6", "grant"),
}
RESOURCES = ["orders", "customers", "locations"]

FAULTY = {
    "shop": "sim", "http_500": 0.08, "http_502": 0.04, "http_503": 0.08, "http_504": 0.04,
    "http_429": 0.04, "retry_after": 0.1, "slow": 0.06, "slow_seconds": 40.0,  # 2 s at time scale 20
    "drop_connection": 0.04, "truncated_body": 0.04, "malformed_body": 0.04, "download_cut": 0.3,
}
GRANTED_FAULTS = {"shop": "sim4", "http_503": 0.1, "http_500": 0.05}


def write_config(work: Path, sim: Simulator, proxy: GrantProxy, *, secret: str, bad_secret: str) -> Path:
    """``work/shopsync.toml`` (no secret in it) and the secret files in ``work/secrets`` (0600)."""
    secrets_dir = work / "secrets"
    secrets_dir.mkdir(mode=0o700)

    def secret_file(name: str, value: str) -> str:
        path = secrets_dir / name
        path.write_text(value + "\n")
        path.chmod(0o600)
        return str(path)

    lines = [
        f'database = "sqlite:///{work}/state/state.db"',
        f'work_dir = "{work}/tmp"',
        "[sink]", f'url = "jsonl:///{work}/out"',
        "[sync]",
        'safety_margin = "2s"', 'overlap = "30s"', "bulk_threshold = 100", 'request_timeout = "0.5s"',
        "max_attempts = 3", 'backoff_base = "0.05s"', 'backoff_cap = "0.3s"',
        'bulk_poll_min = "0.05s"', 'bulk_poll_max = "0.3s"',
        "[daemon]",
        'listen = "127.0.0.1:0"', 'every = "2s"', "jitter = 0", 'stop_timeout = "10s"',
        'park_backoff = "1s"', 'park_backoff_max = "4s"', 'log_level = "debug"',
    ]
    for name, (sim_shop, auth) in SHOPS.items():
        base = proxy.url if auth in ("grant", "bad-grant") else sim.url
        lines += ["[[shop]]", f'name = "{name}"', f'domain = "{sim_shop}.myshopify.com"',
                  f'api_url = "{sim.graphql_url(sim_shop, base)}"', f"resources = {json.dumps(RESOURCES)}"]
        if auth == "token":
            lines.append(f'access_token = {{ env = "{TOKEN_ENV}" }}')
        elif auth == "wrong-token":
            lines.append(f'access_token = {{ env = "{WRONG_TOKEN_ENV}" }}')
        else:
            lines.append(f'client_id = {{ file = "{secret_file(name + ".id", SIM_CLIENT_ID)}" }}')
            value = secret if auth == "grant" else bad_secret
            lines.append(f'client_secret = {{ file = "{secret_file(name + ".secret", value)}" }}')
    config = work / "shopsync.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def write_ctrl_config(work: Path, sim: Simulator) -> tuple[Path, str]:
    """A one-shop configuration whose token file holds two lines (an embedded CR LF is not
    surrounding whitespace, so it reaches the HTTP layer, which must refuse it without echoing it)."""
    work.mkdir()
    value = new_token() + "\r\n" + new_token()
    token_file = work.parent / "secrets" / "ctrlchar.token"
    token_file.write_text(value + "\n")
    token_file.chmod(0o600)
    config = work / "shopsync.toml"
    config.write_text("\n".join([
        f'database = "sqlite:///{work}/state.db"',
        "[sync]", "max_attempts = 2", 'backoff_base = "0.05s"', 'backoff_cap = "0.1s"', 'request_timeout = "2s"',
        "[daemon]", 'log_level = "debug"',
        "[[shop]]", 'name = "ctrlchar"', 'domain = "sim.myshopify.com"', f'api_url = "{sim.graphql_url("sim")}"',
        'resources = ["locations"]', f'access_token = {{ file = "{token_file}" }}',
    ]) + "\n")
    return config, value


async def run_daemon(config: Path, env: dict[str, str], *, log_format: str, settle: bool) -> list[Output]:
    """``shopsync run`` until ready (and, with ``settle``, until every shop has an outcome), its
    endpoints scraped, then SIGTERM; every output it produced."""
    daemon = await Daemon.start(config, env, log_format=log_format)
    label = f"run ({log_format})"
    try:
        url = await daemon.url()

        async def ready() -> bool:
            return (await http_get(url + "/readyz"))[0] == 200

        await poll(ready, within=20, what="/readyz 200")

        async def every_shop_has_an_outcome() -> dict | None:
            code, body = await http_get(url + "/status")
            doc = json.loads(body)
            done = {
                shop["name"] for shop in doc["shops"]
                if shop.get("parked") or any(
                    r.get("last_success_at") or r.get("last_error") or r.get("parked") for r in shop["resources"]
                )
            }
            by_name = {shop["name"]: shop for shop in doc["shops"]}
            # The log lines asserted below ("shop parked" for the 401, "resource parked" for the
            # 403) are written when the parking is applied, before /status shows it.
            parked = bool(by_name.get("badtoken", {}).get("parked")) and any(
                r.get("parked") for r in by_name.get("noscope", {}).get("resources", [])
            )
            return doc if code == 200 and done >= set(SHOPS) and parked else None

        if settle:
            await poll(every_shop_has_an_outcome, within=30, every=0.25, what="an outcome for every shop in /status")
        scraped = []
        for path in ("/metrics", "/status", "/healthz", "/readyz"):
            code, body = await http_get(url + path)
            scraped.append(Output(f"{label} GET {path} ({code})", body))
        assert b"shopsync_ready" in scraped[0].data, scraped[0].text[:500]
        status = json.loads(scraped[1].data)
        assert {s["name"] for s in status["shops"]} == set(SHOPS), status
    finally:
        code = await daemon.stop()
    log = daemon.stderr.decode(errors="replace")
    assert code == 0, log[-3000:]
    assert ("DEBUG" if log_format == "text" else '"level":"debug"') in log, log[:3000]
    assert "daemon started" in log and "faulty" in log, log[:3000]
    if settle:
        assert "shop parked" in log and "resource parked" in log, log[-3000:]  # the 401 and the 403
    for name in SHOPS:
        assert f'shop="{name}"'.encode() in scraped[0].data, scraped[0].text[:3000]
    return [*scraped, *daemon.outputs(label)]


async def test_no_output_of_failing_runs_holds_a_secret(tmp_path: Path) -> None:
    token, wrong_token = new_token(), new_token()
    secret, bad_secret = new_client_secret(), new_client_secret()
    work = tmp_path / "work"
    work.mkdir()
    outputs: list[Output] = []
    sim_args = ["--shops", str(len(SHOPS)), "--seed", "3", "--orders", "150", "--products", "20",
                "--customers", "40", "--plan", "plus", "--time-scale", "20", "--token", token]
    async with Simulator.running(sim_args) as sim, GrantProxy(sim.url, secret, {"sim6"}).running() as proxy:
        await sim.control("/_sim/faults", FAULTY)
        await sim.control("/_sim/faults", GRANTED_FAULTS)
        await sim.control("/_sim/status/sim3", {"status": 403})
        config = write_config(work, sim, proxy, secret=secret, bad_secret=bad_secret)
        env = {**os.environ, TOKEN_ENV: token, WRONG_TOKEN_ENV: wrong_token}

        check = await run_shopsync("check", "--config", str(config), env=env)
        outputs += check.outputs("check")
        assert check.returncode == 0, check.stderr.decode()
        assert b"read_orders" in check.stdout, check.stdout.decode()

        by_format = {}
        for fmt in ("json", "text"):
            done = await run_shopsync("sync", "--config", str(config), "--log-format", fmt, "--progress", "log",
                                      env=env, within=45)
            outputs += done.outputs(f"sync ({fmt})")
            assert done.returncode == 1, done.stderr.decode()[-3000:]  # the 401/403/grant shops fail
            by_format[fmt] = done.stderr.decode()
        json_lines = [json.loads(line) for line in by_format["json"].splitlines() if line.startswith("{")]
        assert {line.get("level") for line in json_lines} >= {"debug", "warning", "error"}, json_lines[:5]
        assert " DEBUG " in by_format["text"], by_format["text"][:2000]
        for fmt, text in by_format.items():
            for marker in ("badtoken", "401", "noscope", "403", "badsecret", "tokendown", "granted", "faulty"):
                assert marker in text, f"sync ({fmt}) stderr lacks {marker!r}:\n{text[-3000:]}"

        ctrl_config, ctrl_token = write_ctrl_config(work / "ctrl", sim)
        ctrl = await run_shopsync("sync", "--config", str(ctrl_config), "--log-format", "json", "--progress", "log",
                                  env=env, within=45)
        outputs += ctrl.outputs("sync (token with a line break)")
        assert b"ctrlchar" in ctrl.stderr + ctrl.stdout, ctrl.stderr.decode()[-3000:]

        outputs += await run_daemon(config, env, log_format="json", settle=True)
        outputs += await run_daemon(config, env, log_format="text", settle=False)

        # The table with the daemon's environment, the JSON document without any token (as the
        # README says it needs none: the configuration then loads only in part).
        no_tokens = {k: v for k, v in env.items() if k not in (TOKEN_ENV, WRONG_TOKEN_ENV)}
        for args, status_env in (((), env), (("--json",), no_tokens)):
            shown = await run_shopsync("status", "--config", str(config), *args, env=status_env)
            outputs += shown.outputs("status " + " ".join(args))
            assert shown.returncode == 0, shown.stderr.decode()
            for name in SHOPS:
                assert name.encode() in shown.stdout, shown.stdout.decode()

        assert proxy.issued, "the client-credentials grant never succeeded"
        assert proxy.used_tokens & set(proxy.issued), "no GraphQL request carried an issued token"

    outputs += files_under(work, exclude=[work / "secrets"])
    assert any(o.label.startswith("file state/") for o in outputs), [o.label for o in outputs]
    assert any(o.label.startswith("file out/") for o in outputs), [o.label for o in outputs]
    assert all(o.data for o in outputs if o.label.endswith("stderr") and not o.label.startswith(("check", "status"))), \
        [o.label for o in outputs if not o.data]

    named = {"access token": token, "wrong access token": wrong_token, "client secret": secret,
             "wrong client secret": bad_secret, "token with a line break": ctrl_token}
    named |= {f"line {i + 1} of the token with a line break": part for i, part in enumerate(ctrl_token.split())}
    named |= {f"issued access token #{i + 1}": t for i, t in enumerate(proxy.issued)}
    if dump := os.environ.get("SHOPSYNC_SECURITY_DUMP"):  # to read what was searched
        dump_outputs(outputs, Path(dump))
    found = leaks(outputs, named)
    assert not found, f"{len(found)} secret occurrence(s):\n" + "\n".join(found[:40])


def test_the_scan_finds_every_rendering() -> None:
    """The search itself is not vacuous: each rendering of a secret, anywhere in any output, is found."""
    token, secret = new_token(), new_client_secret()
    quoted = urllib.parse.quote(secret, safe="")
    assert quoted != secret
    samples = [
        Output("plain", f"x-shopify-access-token: {token}".encode()),
        Output("quoted", f"client_id=a&client_secret={quoted}".encode()),
        Output("escaped", json.dumps({"v": secret}).encode()),
        Output("stripped", f"token …{token.split('_', 1)[1]}".encode()),
        Output("clean", b"client_secret=*** X-Shopify-Access-Token: ***"),
    ]
    found = leaks(samples, {"token": token, "secret": secret})
    assert {f.split(" in ", 1)[1].split(" at ")[0] for f in found} == {"plain", "quoted", "escaped", "stripped"}, found
