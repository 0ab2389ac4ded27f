"""The published chart-template schema, the validation messages, and the backfill plan (pure)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from ledger_etl.market.template_plan import bar_open, lookback_by_resolution, plan_backfill
from ledger_etl.market.templates import (
    TemplateError,
    load_template_file,
    parse_template_text,
    template_schema,
    validate_template,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples" / "chart-templates"
NOW = datetime(2026, 1, 15, 12, 34, 56, tzinfo=UTC)  # a Thursday


def base() -> dict[str, Any]:
    return {
        "schema_version": 1,
        "name": "board",
        "instruments": {"epics": ["GOLD", "BTCUSD"]},
        "resolutions": ["MINUTE", "HOUR"],
        "indicators": [
            {"id": "ema", "type": "EMA", "params": {"period": 50}},
            {"id": "macd", "type": "MACD", "params": {"fast": 12, "slow": 26, "signal": 9}},
        ],
        "layout": {
            "rows": 1,
            "columns": 2,
            "charts": [
                {"row": 0, "column": 0, "epic": "GOLD", "resolution": "MINUTE",
                 "indicators": ["ema"], "lookback_bars": 100},
                {"row": 0, "column": 1, "resolution": "HOUR", "indicators": ["macd"]},
            ],
        },
    }  # fmt: skip


def problems_of(document: Any) -> list[str]:
    with pytest.raises(TemplateError) as caught:
        validate_template(document, "t.yaml")
    return caught.value.problems


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(template_schema())
    assert template_schema()["$schema"].endswith("2020-12/schema")


@pytest.mark.parametrize("path", sorted(EXAMPLES.iterdir()), ids=lambda p: p.name)
def test_the_shipped_examples_are_valid(path: Path) -> None:
    template = load_template_file(path)
    assert template.document["schema_version"] == 1


def test_the_schema_alone_accepts_and_refuses_what_it_says() -> None:
    validator = Draft202012Validator(template_schema())
    assert list(validator.iter_errors(base())) == []
    both = base()
    both["instruments"]["watchlist"] = "w"
    assert list(validator.iter_errors(both))
    for key in ("name", "instruments", "resolutions", "layout", "schema_version"):
        broken = base()
        del broken[key]
        assert list(validator.iter_errors(broken)), key


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.pop("name"), "name: is required"),
        (lambda d: d.update(name=""), "name: '' does not match"),
        (lambda d: d.update(colour="red"), "(template): unknown field(s) 'colour'"),
        (lambda d: d["instruments"].update(watchlist="w"),
         "instruments: give either epics or watchlist (exactly one of them)"),
        (lambda d: d["instruments"].update(epics=[]), "instruments.epics: [] should be non-empty"),
        (lambda d: d["instruments"].update(epics=["GOLD", "GOLD"]), "instruments.epics: "),
        (lambda d: d["instruments"].update(epics=["BAD EPIC"]), "instruments.epics[0]: "),
        (lambda d: d.update(resolutions=["HOURLY"]), "resolutions[0]: 'HOURLY' is not one of"),
        (lambda d: d["indicators"][0]["params"].pop("period"),
         "indicators[0].params.period: is required"),
        (lambda d: d["indicators"][0]["params"].update(period=0),
         "indicators[0].params.period: 0 is less than the minimum of 1"),
        (lambda d: d["indicators"][1]["params"].update(lenght=3),
         "indicators[1].params: unknown field(s) 'lenght'"),
        (lambda d: d["indicators"][0].update(type="KAMA"), "indicators[0].type: 'KAMA' is not one"),
        (lambda d: d["layout"]["charts"][0].pop("row"), "layout.charts[0].row: is required"),
        (lambda d: d["layout"].update(rows=7), "layout.rows: 7 is greater than the maximum of 6"),
    ],
)  # fmt: skip
def test_schema_errors_name_the_field(change: Any, expected: str) -> None:
    document = copy.deepcopy(base())
    change(document)
    found = problems_of(document)
    assert any(p.startswith(expected) for p in found), found


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["layout"]["charts"][1].update(resolution="DAY"),
         "layout.charts[1].resolution: 'DAY' is not one of the template's resolutions"),
        (lambda d: d["layout"]["charts"][0].update(epic="SILVER"),
         "layout.charts[0].epic: 'SILVER' is not in instruments.epics"),
        (lambda d: d["layout"]["charts"][1].update(indicators=["rsi"]),
         "layout.charts[1].indicators[0]: no indicator 'rsi' (the template defines ema, macd)"),
        (lambda d: d["layout"]["charts"][1].update(column=0),
         "layout.charts[1]: overlaps layout.charts[0] at row 0, column 0"),
        (lambda d: d["layout"]["charts"][1].update(column_span=2),
         "layout.charts[1]: does not fit the 1x2 grid"),
        (lambda d: d["indicators"][1]["params"].update(fast=30),
         "indicators[1].params: fast must be shorter than slow"),
        (lambda d: d["indicators"][1].update(id="ema"), "indicators[1].id: 'ema' is used twice"),
    ],
)  # fmt: skip
def test_layout_errors_name_the_field(change: Any, expected: str) -> None:
    document = copy.deepcopy(base())
    change(document)
    found = problems_of(document)
    assert any(p.startswith(expected) for p in found), found


def test_every_problem_is_reported_at_once() -> None:
    document = base()
    document["resolutions"] = ["HOURLY"]
    document["layout"]["charts"][0].pop("row")
    found = problems_of(document)
    assert len(found) >= 2
    with pytest.raises(TemplateError, match=r"template t\.yaml is invalid: .*resolutions\[0\]"):
        validate_template(document, "t.yaml")


def test_files_that_are_not_templates(tmp_path: Path) -> None:
    twice = tmp_path / "twice.yaml"
    twice.write_text("name: a\nname: b\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"line 2: .*key 'name' is given twice"):
        load_template_file(twice)
    with pytest.raises(TemplateError, match="key 'name' is given twice"):
        parse_template_text('{"name": "a", "name": "b"}', "x.json")
    with pytest.raises(TemplateError, match="line 1: not JSON"):
        parse_template_text("{nope", "x.json")
    with pytest.raises(TemplateError, match="not YAML"):
        parse_template_text("a: [1, 2", "x.yaml")
    with pytest.raises(TemplateError, match="cannot read it"):
        load_template_file(tmp_path / "missing.yaml")
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(TemplateError, match="not UTF-8"):
        load_template_file(binary)
    with pytest.raises(TemplateError, match=r"\(template\): \[1\] is not of type 'object'"):
        validate_template([1])


def test_same_content_same_hash_whatever_the_format(tmp_path: Path) -> None:
    document = base()
    as_json = tmp_path / "t.json"
    as_json.write_text(json.dumps(document, indent=4), encoding="utf-8")
    reordered = dict(reversed(list(document.items())))
    as_yaml = tmp_path / "t.yaml"
    import yaml

    as_yaml.write_text(yaml.safe_dump(reordered, sort_keys=False), encoding="utf-8")
    assert load_template_file(as_json).sha256 == load_template_file(as_yaml).sha256
    changed = copy.deepcopy(document)
    changed["lookback_bars"] = 301
    assert validate_template(changed).sha256 != validate_template(document).sha256


def test_plan_covers_closed_bars_with_indicator_warm_up() -> None:
    document = base()
    needs = lookback_by_resolution(document)
    assert needs["MINUTE"] == (150, False, {"GOLD"})  # 100 bars + EMA(50) warm-up, fixed epic
    assert needs["HOUR"] == (335, True, set())  # 300 default + MACD 26 + 9, any epic
    plan = plan_backfill(document, ["GOLD", "BTCUSD"], NOW)
    assert [(r.epic, r.resolution, r.bars) for r in plan] == [
        ("GOLD", "MINUTE", 150),
        ("GOLD", "HOUR", 335),
        ("BTCUSD", "HOUR", 335),
    ]
    minute = plan[0]
    assert minute.end == datetime(2026, 1, 15, 12, 34, tzinfo=UTC)  # the bar in progress is out
    assert (minute.end - minute.start).total_seconds() == 150 * 60
    assert plan[1].end == datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def test_bar_opens_align_like_the_broker() -> None:
    assert bar_open(NOW, "HOUR_4") == datetime(2026, 1, 15, 12, tzinfo=UTC)
    assert bar_open(NOW, "DAY") == datetime(2026, 1, 15, tzinfo=UTC)
    assert bar_open(NOW, "WEEK") == datetime(2026, 1, 12, tzinfo=UTC)  # Monday
    assert bar_open(NOW, "MINUTE_15") == datetime(2026, 1, 15, 12, 30, tzinfo=UTC)


def test_resolutions_no_chart_uses_get_the_default_for_every_epic() -> None:
    document = base()
    document["resolutions"].append("DAY")
    document["lookback_bars"] = 20
    plan = plan_backfill(document, ["GOLD", "BTCUSD"], NOW)
    days = [(r.epic, r.bars) for r in plan if r.resolution == "DAY"]
    assert days == [("GOLD", 20), ("BTCUSD", 20)]
