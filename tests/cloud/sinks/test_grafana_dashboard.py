"""The Grafana dashboards and provisioning in config/grafana name only what the sinks write.

* both dashboards parse, panel ids are unique, panels fit the 24-column grid, every target uses a
  provisioned datasource;
* every InfluxQL query reads only the fixed measurements, and only their tags and fields;
* every PromQL metric is ``<measurement>_<field>`` of the same list, and every query of the
  VictoriaMetrics twin runs (and returns data) on a real VictoriaMetrics after points were written
  through InfluxSink;
* the status value mappings follow the connector status enum (statusCode = its index).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloud.actions import Action, WritePoint
from cloud.sinks import InfluxConfig, InfluxSink
from tests.support.net import eventually
from tests.support.victoria import Victoria

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "config" / "grafana"
MODELS = ROOT / "thingmodels" / "models"
DASHBOARDS = {"influx": GRAFANA / "dashboards" / "voltmesh-charging.json",
              "victoria": GRAFANA / "dashboards" / "voltmesh-charging-victoria.json"}

NUMERIC = {"float", "int", "decimal", "bool"}


def model(product: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((MODELS / f"{product}.yaml").read_text())
    return data


def numeric_properties(product: str) -> set[str]:
    return {name for name, spec in model(product)["properties"].items()
            if spec.get("type") in NUMERIC}


#: measurement -> (tags, fields): the names agreed with the rule engine (config/rules/telemetry.yaml)
SCHEMA: dict[str, tuple[set[str], set[str]]] = {
    "connector": ({"gw", "device", "status"},
                  {"power", "voltage", "current", "energy", "meterEnergy", "soc",
                   "gunTemperature", "statusCode"}),
    "meter": ({"gw", "device"}, numeric_properties("meter")),
    "env_sensor": ({"gw", "device"}, numeric_properties("env_sensor")),
    "charger": ({"gw", "device"}, numeric_properties("charger")),
    "alarm": ({"gw", "product", "device", "type", "level"}, {"active"}),
}


def load(flavour: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARDS[flavour].read_text(encoding="utf-8"))
    return data


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def targets(dashboard: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(p["title"], t) for p in panels(dashboard) if p["type"] != "row"
            for t in p["targets"]]


def provisioned_uids() -> dict[str, str]:
    doc = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "voltmesh.yaml").read_text())
    return {ds["uid"]: ds["type"] for ds in doc["datasources"]}


@pytest.mark.parametrize("flavour", sorted(DASHBOARDS))
def test_dashboard_structure(flavour: str) -> None:
    dashboard = load(flavour)
    every = panels(dashboard)
    ids = [p["id"] for p in every]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert len(every) > 10
    uids = provisioned_uids()
    for panel in every:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["targets"], f"{panel['title']}: no query"
        for target in panel["targets"]:
            ds = target["datasource"]
            assert uids.get(ds["uid"]) == ds["type"], f"{panel['title']}: {ds}"
    wanted = "influxdb" if flavour == "influx" else "prometheus"
    assert {t["datasource"]["type"] for _, t in targets(dashboard)} == {wanted}
    for variable in dashboard["templating"]["list"]:
        assert uids.get(variable["datasource"]["uid"]) == wanted


def test_both_dashboards_show_the_same_panels() -> None:
    titles = {flavour: [p["title"] for p in panels(load(flavour))] for flavour in DASHBOARDS}
    assert titles["influx"] == titles["victoria"]


def test_dashboards_cover_power_energy_status_temperatures_and_alarms() -> None:
    text = json.dumps(load("influx"))
    for needle in ('\\"power\\"', '\\"energyImport\\"', '\\"statusCode\\"',
                   '\\"gunTemperature\\"', 'FROM \\"env_sensor\\"', 'FROM \\"alarm\\"'):
        assert needle in text, needle


def test_provisioned_dashboard_provider() -> None:
    doc = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "voltmesh.yaml").read_text())
    assert doc["apiVersion"] == 1
    assert [p["type"] for p in doc["providers"]] == ["file"]


def influxql_names(query: str) -> tuple[set[str], set[str], set[str]]:
    """(measurements after FROM, every other double-quoted identifier, aliases)."""
    measurements = set(re.findall(r'FROM\s+"([^"]+)"', query))
    aliases = set(re.findall(r'AS\s+"([^"]+)"', query))
    quoted = set(re.findall(r'"([^"]+)"', query)) - measurements - aliases
    return measurements, quoted, aliases


def test_influxql_queries_name_only_known_measurements_tags_and_fields() -> None:
    dashboard = load("influx")
    queries = [(title, t["query"]) for title, t in targets(dashboard)]
    queries += [("variable " + v["name"], v["query"]) for v in dashboard["templating"]["list"]]
    assert len(queries) > 10
    for title, query in queries:
        measurements, names, _ = influxql_names(query)
        assert measurements, f"{title}: no FROM in {query}"
        for measurement in measurements:
            assert measurement in SCHEMA, f"{title}: unknown measurement {measurement}"
        allowed = set().union(*(SCHEMA[m][0] | SCHEMA[m][1] for m in measurements))
        assert names <= allowed, f"{title}: unknown names {names - allowed} in {query}"


def test_promql_queries_name_only_known_metrics_and_labels() -> None:
    dashboard = load("victoria")
    metrics = {f"{m}_{f}": tags for m, (tags, fields) in SCHEMA.items() for f in fields}
    exprs = [(title, t["expr"]) for title, t in targets(dashboard)]
    exprs += [("variable " + v["name"], v["query"]["query"])
              for v in dashboard["templating"]["list"]]
    for title, expr in exprs:
        used = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\{", expr)
        used += re.findall(r"label_values\(([A-Za-z0-9_]+)", expr)
        assert used, f"{title}: no metric in {expr}"
        for name in used:
            assert name in metrics, f"{title}: unknown metric {name}"
            labels = set(re.findall(r"(?:by|without) \(([^)]*)\)", expr))
            for group in labels:
                for label in (x.strip() for x in group.split(",")):
                    assert label in metrics[name], f"{title}: unknown label {label}"


def test_status_value_mappings_follow_the_connector_status_enum() -> None:
    statuses = model("connector")["properties"]["status"]["values"]
    for flavour in DASHBOARDS:
        found = 0
        for panel in panels(load(flavour)):
            config = panel.get("fieldConfig", {})
            mapping_lists = [config.get("defaults", {}).get("mappings", [])]
            mapping_lists += [prop["value"] for o in config.get("overrides", [])
                              for prop in o["properties"] if prop["id"] == "mappings"]
            for mappings in mapping_lists:
                for mapping in mappings:
                    options = mapping["options"]
                    assert {int(k): v["text"] for k, v in options.items()} == \
                        dict(enumerate(statuses)), panel["title"]
                    found += 1
        assert found >= 2


async def test_every_promql_query_runs_and_returns_data_on_victoriametrics(
        victoria: Victoria) -> None:
    ts = int(time.time() * 1000) - 10_000
    points: list[Action] = []

    def add(measurement: str, tags: dict[str, str], **fields: float) -> None:
        points.append(WritePoint(rule="t", key=f"k{len(points)}", measurement=measurement,
                                 tags=tags, fields=dict(fields), ts_ms=ts))

    for gw in ("gwA", "gwB"):
        for n, code in ((1, 4), (2, 1)):
            add("connector", {"gw": gw, "device": f"c{n}", "status": "charging"},
                power=7.0 * n, energy=1.5, soc=40, gunTemperature=35, statusCode=code)
        add("meter", {"gw": gw, "device": "m1"}, power=20, energyImport=100)
        add("env_sensor", {"gw": gw, "device": "t1"}, temperature=21, humidity=50)
        add("charger", {"gw": gw, "device": "CP1"}, clockSkew=0.5)
        add("alarm", {"gw": gw, "product": "connector", "device": "c1",
                      "type": "gunOverTemperature", "level": "major"}, active=1)
    sink = InfluxSink(InfluxConfig(url=victoria.url))
    try:
        await sink(points)
    finally:
        await sink.aclose()

    async def visible() -> bool:
        await victoria.force_flush()
        return len(await victoria.query("alarm_active")) == 2

    await eventually(visible, timeout=30, interval=0.5)
    for title, target in targets(load("victoria")):
        expr = (target["expr"].replace("$gw", ".*").replace("$__range", "1h")
                .replace("$__interval", "1m"))
        result = await victoria.query(expr)  # raises unless VictoriaMetrics accepts it
        assert result, f"{title}: no data for {expr}"
        if title == "Connectors charging now":
            assert [r["value"][1] for r in result] == ["2"]
        if title == "Charging power by station (kW)":
            assert {r["metric"]["gw"]: r["value"][1] for r in result} == {"gwA": "21",
                                                                          "gwB": "21"}
