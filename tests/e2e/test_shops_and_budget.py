"""Shops are independent, and the shared cost budget is spent fully without being throttled."""

from __future__ import annotations

from shopsync.simulator.server import run_simulator

from .conftest import TOKEN_ENV, assert_matches_truth, sim_config, sync_subprocess, write_config


async def test_one_shop_answering_401_does_not_stop_another(tmp_path):
    async with run_simulator(sim_config("good"), sim_config("revoked")) as server:
        good, bad = server.shops["good"], server.shops["revoked"]
        config = write_config(tmp_path / "shopsync.toml", [good, bad])
        bad.revoke_tokens(static=True)  # every token of this shop now answers 401
        result = await sync_subprocess(config, {TOKEN_ENV: good.token})
        assert result.returncode == 1, result.stderr[-2000:]
        failures = [line for line in result.stderr.splitlines() if line.startswith("FAILED ")]
        assert len(failures) == 7 and all(line.startswith("FAILED revoked/") for line in failures), failures
        assert all("401" in line for line in failures), failures
        assert good.token not in result.stderr and good.token not in result.stdout
        assert_matches_truth(good, tmp_path / "state.db")


async def test_standard_plan_budget_is_spent_fully_without_throttling(tmp_path):
    """A budget-bound paginated sync against a Standard-plan bucket (2000 points, 100/s × time scale).

    Several resources run at once on the one budget. THROTTLED answers must stay under 1% of the
    requests and the points spent at or above 90% of what the restore rate allowed; both figures
    are printed by ``shopsync sync``.
    """
    cfg = sim_config(plan="standard", time_scale=10.0, data={"orders": 450, "customers": 600, "products": 60})
    async with run_simulator(cfg) as server:
        shop = server.shop()
        config = write_config(
            tmp_path / "shopsync.toml", [shop], sync={"path": "paginated"},
            extra_shop_keys={"sim": {"resources": ["orders", "customers", "products"]}},
        )
        result = await sync_subprocess(config, {TOKEN_ENV: shop.token})
        assert result.returncode == 0, result.stderr[-2000:]
        counters = shop.counters.as_dict()
        assert counters["requests"] > 50, counters
        assert counters["throttled"] / counters["requests"] < 0.01, counters
        summary = next(line for line in result.stdout.splitlines() if line.startswith("sim: "))
        assert "THROTTLED" in summary and "of what the restore rate allowed" in summary, summary
        utilisation = float(summary.split("points spent")[1].split("=")[1].split("%")[0])
        assert utilisation >= 90.0, summary
        assert_matches_truth(shop, tmp_path / "state.db", resources=["orders", "customers", "products"])
