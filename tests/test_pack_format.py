"""Pack format: schemas vs dataclasses, the stock pack, and every bad input with its message."""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from quotaflow.cli import main
from quotaflow.packs.definitions import KINDS, FormDef
from quotaflow.packs.loader import MAX_FILE_BYTES, read_source
from quotaflow.packs.problems import PackInvalid
from quotaflow.packs.schema import key_of, stale_schemas
from quotaflow.packs.validate import load_pack
from quotaflow.resources import schema_dir, stock_pack_dir
from tests.packfiles import DEAL, KPI, PACK, PIPELINE, minimal_files, write_pack


def problems_of(path: Path) -> list[str]:
    with pytest.raises(PackInvalid) as caught:
        load_pack(path)
    return [str(p) for p in caught.value.problems]


def only_problem(path: Path) -> str:
    found = problems_of(path)
    assert len(found) == 1, found
    return found[0]


# --- schema and dataclasses agree ---------------------------------------------------------


def test_committed_schemas_are_the_ones_the_dataclasses_generate() -> None:
    assert stale_schemas(KINDS, schema_dir()) == []


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_dataclass_field_is_a_schema_property_and_nothing_else(kind: str) -> None:
    schema = json.loads((schema_dir() / f"{kind}.schema.json").read_text())
    keys = {key_of(f) for f in dataclasses.fields(KINDS[kind])}
    assert set(schema["properties"]) - {"$schema"} == keys
    assert schema["additionalProperties"] is False


def test_the_committed_schemas_accept_every_stock_document() -> None:
    loaded = read_source(stock_pack_dir())
    assert loaded.problems == []
    for doc in loaded.docs:
        schema = json.loads((schema_dir() / f"{doc.data['kind']}.schema.json").read_text())
        assert list(Draft202012Validator(schema).iter_errors(doc.data)) == [], doc.file


def test_schema_check_command_detects_a_stale_schema(tmp_path: Path, monkeypatch) -> None:
    import quotaflow.packs.cli as pack_cli

    monkeypatch.setattr(pack_cli, "schema_dir", lambda: tmp_path)
    runner = CliRunner()
    assert runner.invoke(main, ["pack", "schema", "--check"]).exit_code == 1
    assert runner.invoke(main, ["pack", "schema", "--write"]).exit_code == 0
    result = runner.invoke(main, ["pack", "schema", "--check"])
    assert result.exit_code == 0, result.output


# --- the stock pack -----------------------------------------------------------------------


def test_stock_pack_validates_from_the_cli() -> None:
    result = CliRunner().invoke(main, ["pack", "validate", str(stock_pack_dir())])
    assert result.exit_code == 0, result.output
    assert f"OK b2b_manufacturer {load_pack(stock_pack_dir()).version}" in result.output


def test_a_changed_stock_pack_has_a_new_version() -> None:
    # Installed demo databases take a stock pack's change only as a higher version: content
    # changed under the same version would never reach them (and `pack install` refuses it).
    recorded = json.loads((Path(__file__).parent / "stock_packs.json").read_text("utf-8"))
    pack = load_pack(stock_pack_dir())
    hashes = recorded[pack.id]
    assert pack.version in hashes, (
        f"stock pack {pack.id} {pack.version} is not in tests/stock_packs.json: "
        f'add "{pack.version}": "{pack.content_hash}"'
    )
    assert hashes[pack.version] == pack.content_hash, (
        f"stock pack {pack.id} changed but is still version {pack.version}: raise `version` in "
        f'its pack.yaml and add "<new version>": "{pack.content_hash}" to tests/stock_packs.json'
    )


def test_stock_pack_has_what_a_b2b_manufacturer_needs() -> None:
    pack = load_pack(stock_pack_dir())
    assert {"deal", "visit"} <= set(pack.forms)
    stages = [s.id for s in pack.pipelines["b2b"].stages]
    assert stages[:4] == ["initial_contact", "needs_confirmed", "quotation", "negotiation"]
    assert {"won", "lost"} <= set(stages)
    assert {k.category for k in pack.kpis.values()} == {"result", "process"}
    plan = pack.target_plans["revenue_fy2026"]
    assert [s.level for s in plan.split] == ["region", "team", "rep"]
    assert set(plan.tiers) == {"base", "ideal", "stretch"}
    assert plan.phasing is not None and len(plan.phasing.weights) == 12
    card = pack.scorecards["account_manager_monthly"]
    assert card.groups == {"result": 60, "process": 30, "capability": 10}
    # computed fields are ordered after what they use
    assert pack.computed_order["deal"] == ("grade", "net_amount")
    assert pack.kpi_order.index("win_rate") >= 0


def test_yaml_scalars_stay_what_the_consultant_wrote(tmp_path: Path) -> None:
    form = DEAL.replace(
        "fields:",
        "fields:\n  - {id: region, type: choice, choices: [no, yes, 2025-01-01, '007']}",
    )
    pack = load_pack(write_pack(tmp_path, minimal_files({"forms/deal.yaml": form})))
    field = pack.forms["deal"].fields[0]
    assert field.choices == ("no", "yes", "2025-01-01", "007")


def test_labels_may_be_locale_maps(tmp_path: Path) -> None:
    pack = load_pack(write_pack(tmp_path, minimal_files()))
    assert pack.pack.name == {"en": "ACME", "zh": "艾克米"}


def test_a_pack_may_be_one_multi_document_file(tmp_path: Path) -> None:
    text = "---\n".join(minimal_files().values())
    (tmp_path / "acme.yaml").write_text(text, encoding="utf-8")
    assert isinstance(load_pack(tmp_path / "acme.yaml").forms["deal"], FormDef)


def test_json_files_are_read_with_their_line_numbers(tmp_path: Path) -> None:
    files = minimal_files({"forms/deal.yaml": None})
    doc = {
        "kind": "form",
        "id": "deal",
        "label": "Deal",
        "fields": [{"id": "amount", "type": "money"}, {"id": "bad", "type": "moneyy"}],
    }
    write_pack(tmp_path, files)
    (tmp_path / "forms").mkdir(exist_ok=True)
    (tmp_path / "forms" / "deal.json").write_text(json.dumps(doc, indent=2))
    message = only_problem(tmp_path)
    assert message.startswith("forms/deal.json:12: fields/1/type: expected one of:")
    assert "did you mean 'money'?" in message


# --- extends ------------------------------------------------------------------------------


def test_extends_overlays_a_base_pack_found_beside_it(tmp_path: Path) -> None:
    base = write_pack(
        tmp_path / "base_b2b", minimal_files({"pack.yaml": PACK.replace("acme", "base_b2b")})
    )
    child_form = """\
    kind: form
    id: deal
    label: {en: Deal, zh: 商机}
    fields:
      - {id: amount, type: money, required: true}
      - {id: region, type: text}
    """
    child = write_pack(
        tmp_path / "acme",
        {
            "pack.yaml": PACK + "extends: base_b2b@^1.0\n",
            "forms/deal.yaml": child_form,
        },
    )
    pack = load_pack(child)
    assert base.exists() and pack.id == "acme"
    fields = {f.id: f for f in pack.forms["deal"].fields}
    assert list(fields) == ["customer", "amount", "discount", "note", "region"]
    assert fields["amount"].required is True
    assert pack.forms["deal"].label == {"en": "Deal", "zh": "商机"}
    assert "won_revenue" in pack.kpis  # inherited untouched
    assert "extends" not in pack.documents[0]


def test_missing_extends_base_is_named(tmp_path: Path) -> None:
    folder = write_pack(
        tmp_path / "acme", minimal_files({"pack.yaml": PACK + "extends: nowhere@^1\n"})
    )
    message = only_problem(folder)
    assert message.startswith("pack.yaml:5: extends: base pack 'nowhere' not found")


def test_extends_version_constraint_is_checked(tmp_path: Path) -> None:
    write_pack(
        tmp_path / "base_b2b", minimal_files({"pack.yaml": PACK.replace("acme", "base_b2b")})
    )
    folder = write_pack(
        tmp_path / "acme", minimal_files({"pack.yaml": PACK + "extends: base_b2b@^2.0\n"})
    )
    assert "is version 1.0.0, which does not satisfy ^2.0" in only_problem(folder)


# --- bad input: each gets its message ------------------------------------------------------


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    folder = write_pack(
        tmp_path, minimal_files({"forms/deal.yaml": DEAL + "  - {id: x, type: text\n"})
    )
    message = only_problem(folder)
    assert message.startswith("forms/deal.yaml:")
    assert "YAML syntax error" in message


def test_wrong_type_says_what_was_expected(tmp_path: Path) -> None:
    folder = write_pack(tmp_path, minimal_files({"pack.yaml": PACK.replace("1.0.0", "1.4")}))
    assert only_problem(folder) == "pack.yaml:4: version: expected text, got the number 1.4"


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    form = DEAL.replace("{id: amount, type: money}", "{id: amount, type: money, requird: true}")
    message = only_problem(write_pack(tmp_path, minimal_files({"forms/deal.yaml": form})))
    assert message == (
        "forms/deal.yaml:6: fields/1/requird: unknown key 'requird' — did you mean 'required'?"
    )


def test_duplicate_ids_point_at_both_places(tmp_path: Path) -> None:
    folder = write_pack(tmp_path, minimal_files({"forms/other.yaml": DEAL}))
    message = only_problem(folder)
    assert message == (
        "forms/other.yaml:2: id: duplicate form id 'deal' (first defined at forms/deal.yaml:2)"
    )


def test_duplicate_yaml_keys_are_refused(tmp_path: Path) -> None:
    folder = write_pack(tmp_path, minimal_files({"pack.yaml": PACK + "version: 2.0.0\n"}))
    assert only_problem(folder) == "pack.yaml:5: version: duplicate key 'version' (first at line 4)"


def test_custom_yaml_tags_are_refused(tmp_path: Path) -> None:
    folder = write_pack(
        tmp_path, minimal_files({"pack.yaml": PACK + "currency: !!python/object:os.system x\n"})
    )
    assert "YAML tag tag:yaml.org,2002:python/object:os.system is not allowed" in only_problem(
        folder
    )


def test_a_50_mb_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    folder = write_pack(tmp_path, minimal_files())
    with (folder / "forms" / "huge.yaml").open("wb") as fh:
        fh.truncate(50 * 1024 * 1024)
    assert only_problem(folder) == (
        "forms/huge.yaml: (file): file is too large (50.0 MB); the limit is 5.0 MB"
    )


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_a_zip_pack_installs_like_a_folder(tmp_path: Path) -> None:
    members = {f"acme/{k}": v.encode() for k, v in minimal_files().items()}
    assert load_pack(_zip(tmp_path / "acme.zip", members)).id == "acme"


def test_zip_with_parent_paths_is_refused(tmp_path: Path) -> None:
    members = {k: v.encode() for k, v in minimal_files().items()}
    members["../../etc/evil.yaml"] = b"kind: form"
    message = only_problem(_zip(tmp_path / "evil.zip", members))
    assert "evil.zip: (zip): refused: the archive contains paths outside the pack" in message
    assert "../../etc/evil.yaml" in message


def test_zip_with_absolute_paths_is_refused(tmp_path: Path) -> None:
    members = {"/etc/passwd.yaml": b"x: 1"}
    assert "paths outside the pack" in only_problem(_zip(tmp_path / "abs.zip", members))


def test_zip_bomb_is_refused_before_unpacking(tmp_path: Path) -> None:
    members = {k: v.encode() for k, v in minimal_files().items()}
    members["bomb.yaml"] = b"#" * (30 * 1024 * 1024)  # compresses to ~30 KB
    bomb = _zip(tmp_path / "bomb.zip", members)
    assert bomb.stat().st_size < 200_000
    assert "refused: unpacks to more than 20.0 MB" in only_problem(bomb)


def test_zip_whose_headers_lie_about_sizes_is_still_bounded(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("pack.yaml", PACK)
        archive.writestr("big.yaml", b"#" * (MAX_FILE_BYTES + 10))
    data = bytearray(buffer.getvalue())
    # rewrite the declared uncompressed size of big.yaml in the central directory to 10 bytes
    central = data.rfind(b"PK\x01\x02")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")
    (tmp_path / "liar.zip").write_bytes(bytes(data))
    found = problems_of(tmp_path / "liar.zip")
    assert any("too large" in p or "not a readable" in p or "Bad" in p for p in found), found


def test_billion_laughs_is_bounded(tmp_path: Path) -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i, name in enumerate("bcdefgh"):
        prev = "abcdefg"[i]
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    (tmp_path / "pack.yaml").write_text(PACK + "\n".join(lines) + "\n")
    assert "too many values" in only_problem(tmp_path)


def test_ten_mistakes_are_all_reported_at_once(tmp_path: Path) -> None:
    files = minimal_files(
        {
            "pack.yaml": PACK.replace("version: 1.0.0", "version: one") + "fiscal_year_start: 13\n",
            "forms/deal.yaml": """\
            kind: form
            id: deal
            label: Deal
            fields:
              - {id: customer, type: text, required: true}
              - {id: amount, type: money, lable: Amount}
              - {id: discount, type: percent}
              - {id: discount, type: percent}
              - {id: note, type: textarea, visible_if: "discont > 0.15"}
              - {id: status, type: choice}
            """,
            "pipelines/sales.yaml": PIPELINE.replace("require: [amount]", "require: [amout]"),
            "kpis/won_revenue.yaml": KPI.replace("field: amount", "field: customer"),
            "kpis/win_rate.yaml": "kind: kpi\nid: win_rate\nformula: 'won / lost'\n",
            "scorecards/am.yaml": """\
            kind: scorecard
            id: am
            applies_to: {role: account_managr}
            groups: {result: 60, process: 30}
            items:
              - {kpi: won_revenue, group: result, weight: 100, target: 1000}
              - {kpi: won_revenue, group: process, weight: 100, target: 1000, id: again}
            grades: [{min: 0, grade: D}]
            """,
        }
    )
    result = CliRunner().invoke(main, ["pack", "validate", str(write_pack(tmp_path, files))])
    assert result.exit_code == 1
    expected = [
        "pack.yaml:4: version: 'one' is not a version like 1.0.0",
        "pack.yaml:5: fiscal_year_start: must be at most 12, got 13",
        "forms/deal.yaml:6: fields/1/lable: unknown key 'lable' — did you mean 'label'?",
        "forms/deal.yaml:8: fields/3/id: duplicate id 'discount' (also item 3)",
        "forms/deal.yaml:9: fields/4/visible_if: unknown name 'discont'",
        "forms/deal.yaml:10: fields/5/choices: a choice field needs choices",
        "pipelines/sales.yaml:6: stages/1/require/0: unknown field 'amout' — did you mean 'amount'?",
        "kpis/won_revenue.yaml:4: aggregate/field: cannot sum 'customer': it is not a number",
        "kpis/win_rate.yaml:3: formula: unknown name",
        "scorecards/am.yaml:4: groups: group weights must sum to 100, they sum to 90",
    ]
    for line in expected:
        assert line in result.output, result.output
    assert f"{len(expected)} problems found; nothing was installed" in result.output
    assert "Traceback" not in result.output


def test_roles_come_from_the_pack(tmp_path: Path) -> None:
    pack = PACK + "roles: [{id: account_manager, capability: rep}]\n"
    card = """\
    kind: scorecard
    id: am
    applies_to: {role: account_managr}
    groups: {result: 100}
    items: [{kpi: won_revenue, group: result, weight: 100, target: 1000}]
    grades: [{min: 0, grade: D}]
    """
    folder = write_pack(tmp_path, minimal_files({"pack.yaml": pack, "scorecards/am.yaml": card}))
    assert only_problem(folder) == (
        "scorecards/am.yaml:3: applies_to/role: unknown role 'account_managr'"
        " — did you mean 'account_manager'?"
    )


def test_expression_errors_show_a_caret(tmp_path: Path) -> None:
    form = DEAL.replace('"discount > 0.15"', '"discount >> > 0.15"')
    message = only_problem(write_pack(tmp_path, minimal_files({"forms/deal.yaml": form})))
    assert message.startswith("forms/deal.yaml:8: fields/3/visible_if:")
    assert "\n    discount >> > 0.15\n" in message + "\n"
    assert "^" in message


def test_computed_field_cycles_are_named(tmp_path: Path) -> None:
    form = DEAL.replace(
        "{id: amount, type: money}",
        "{id: amount, type: money, formula: 'net * 2'}\n  - {id: net, type: money, formula: 'amount / 2'}",
    )
    message = only_problem(write_pack(tmp_path, minimal_files({"forms/deal.yaml": form})))
    assert "computed fields depend on each other in a loop: amount -> net -> amount" in message


def test_not_a_pack_path_is_explained() -> None:
    result = CliRunner().invoke(main, ["pack", "validate", "/no/such/pack"])
    assert result.exit_code == 1
    assert "/no/such/pack: (pack): no such file or folder" in result.output


# --- defaults and the records a reference field offers --------------------------------------

FORM_WITH = """\
kind: form
id: deal
label: Deal
fields:
  - {id: customer, type: text, required: true}
  - {id: amount, type: money}
  - %s
"""


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        (
            "{id: qty, type: number, default: many}",
            "fields/2/default: the default 'many' is refused: enter a number, e.g. 1250.50",
        ),
        (
            "{id: off, type: percent, max: 0.5, default: 0.6}",
            "fields/2/default: the default 0.6 is refused: must be at most 50 %",
        ),
        (
            "{id: size, type: choice, choices: [s, m], default: xl}",
            "fields/2/default: the default 'xl' is refused: 'xl' is not one of the choices",
        ),
        (
            "{id: due, type: date, default_formula: 'TODAY() > 1'}",
            "fields/2/default_formula:",
        ),
        (
            "{id: due, type: date, default_formula: 'amount'}",
            "fields/2/default_formula: unknown name 'amount'",
        ),
        (
            "{id: due, type: date, default: 2026-01-01, default_formula: 'TODAY()'}",
            "fields/2/default: give either 'default' or 'default_formula', not both",
        ),
        (
            "{id: net, type: money, formula: 'amount * 2', default: 5}",
            "fields/2/default: a computed field has no default: its formula sets it",
        ),
        (
            "{id: note, type: text, where: \"stage != 'lost'\"}",
            "fields/2/where: only a reference field offers records to filter",
        ),
        (
            "{id: other, type: reference, form: deal, where: \"stage != 'lots' and amout > 0\"}",
            "fields/2/where: unknown name 'amout'",
        ),
        (
            '{id: other, type: reference, form: deal, where: "LEN(customer) > 3"}',
            "fields/2/where: this filter cannot run in the database",
        ),
        (
            "{id: note, type: text, fill: {customer: customer}}",
            "fields/2/fill: only a reference field fills fields from a record",
        ),
        (
            "{id: other, type: reference, form: deal, fill: {custmer: customer}}",
            "fields/2/fill/custmer: unknown field 'custmer'",
        ),
        (
            "{id: other, type: reference, form: deal, fill: {customer: amount}}",
            "fields/2/fill/customer: 'customer' is a text field; 'amount' is a money field",
        ),
        (
            "{id: other, type: reference, form: deal, fill: {amount: amont}}",
            "fields/2/fill/amount: unknown deal field 'amont' — did you mean 'amount'?",
        ),
    ],
)
def test_bad_defaults_and_reference_filters_are_named(
    tmp_path: Path, field: str, expected: str
) -> None:
    folder = write_pack(tmp_path, minimal_files({"forms/deal.yaml": FORM_WITH % field}))
    message = only_problem(folder)
    assert message.startswith("forms/deal.yaml:7: "), message
    assert expected in message, message


def test_good_defaults_and_reference_filters_install(tmp_path: Path) -> None:
    fields = (
        "{id: qty, type: number, default: 3}\n"
        "  - {id: size, type: choice, choices: [s, m], default: m}\n"
        "  - {id: due, type: date, default_formula: 'TODAY()'}\n"
        "  - {id: vip, type: bool, default: true}\n"
        "  - {id: off, type: percent, min: 0.1, default: 0.2}\n"
        "  - {id: other, type: reference, form: deal, where: \"stage != 'lost' and amount > 0\"}"
    )
    pack = load_pack(write_pack(tmp_path, minimal_files({"forms/deal.yaml": FORM_WITH % fields})))
    assert pack.forms["deal"].fields[4].default_formula == "TODAY()"
    assert pack.forms["deal"].fields[6].default == 0.2  # 20 %: within min 10 %


@pytest.mark.parametrize(
    ("round_to", "expected"),
    [
        ("0.001", "round_to: round to a whole number of cents, e.g. 1000 or 0.5"),
        ("1.0e+30", "round_to: round_to (1E+30) is more than the total to split"),
    ],
)
def test_a_plan_rounding_to_less_than_a_cent_or_more_than_its_total_is_named(
    tmp_path: Path, round_to: str, expected: str
) -> None:
    plan = (
        "kind: target_plan\nid: revenue\nkpi: won_revenue\nperiod: '2026'\ntotal: 1000000\n"
        f"round_to: {round_to}\n"
    )
    folder = write_pack(tmp_path, minimal_files({"targets/revenue.yaml": plan}))
    assert expected in only_problem(folder)
