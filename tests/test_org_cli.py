"""`quotaflow user ...` and `quotaflow org import/tree`, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from quotaflow.audit.models import AuditEvent
from quotaflow.cli import main
from quotaflow.org.models import Membership, Team, User
from quotaflow.org.services import password_matches

HEADER = "username,display_name,email,team,team_name,parent_team,role,valid_from,valid_to,is_admin"
GOOD = f"""{HEADER}
,,,company,ACME Industrial,,,,,
,,,east,East region,company,,,,
,,,east_a,East A,east,,,,
wang.fang,Wang Fang,wang@example.com,east_a,,,sales_manager,2025-01-01,,
li.wei,Li Wei,,east_a,,,account_manager,2025-01-01,2025-06-01,
li.wei,,,south,South region,company,account_manager,2025-06-01,,
qian.hong,钱红,,company,,,head_of_sales,2025-01-01,,yes
"""


def run(runner: CliRunner, *args: str, input: str | None = None) -> Result:
    return runner.invoke(main, list(args), input=input)


def write(tmp_path: Path, text: str, name: str = "org.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def count(sessions: sessionmaker[Session], model: type) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def user(sessions: sessionmaker[Session], username: str) -> User | None:
    with sessions() as session:
        return session.scalar(select(User).where(User.username == username))


# --- quotaflow user ---------------------------------------------------------------------------


def test_user_add_reads_the_password_from_stdin(runner: CliRunner, sessions, tmp_path) -> None:
    assert run(runner, "org", "import", write(tmp_path, GOOD)).exit_code == 0
    result = run(
        runner,
        "user",
        "add",
        "Zhou.Tao",
        "--name",
        "Zhou Tao",
        "--email",
        "zt@example.com",
        "--team",
        "east_a",
        "--role",
        "account_manager",
        "--valid-from",
        "2025-02-01",
        "--password-stdin",
        input="s3cret-enough\n",
    )
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    added = user(sessions, "zhou.tao")
    assert added is not None and password_matches(added, "s3cret-enough")
    with sessions() as session:
        membership = session.scalars(select(Membership).where(Membership.user_id == added.id)).one()
        assert (membership.role, membership.valid_from) == ("account_manager", date(2025, 2, 1))
        assert session.scalar(select(AuditEvent).where(AuditEvent.action == "user_add"))


def test_user_add_prompts_twice_without_echo(runner: CliRunner, sessions) -> None:
    result = run(
        runner,
        "user",
        "add",
        "boss",
        "--name",
        "Boss",
        "--admin",
        input="hidden-pass-1\nhidden-pass-1\n",
    )
    assert result.exit_code == 0, result.output
    assert "Password" in result.output and "Repeat the password" in result.output
    assert "hidden-pass-1" not in result.output
    boss = user(sessions, "boss")
    assert boss is not None and boss.is_admin


def test_user_add_refuses_mismatched_short_or_duplicate(runner: CliRunner, sessions) -> None:
    mismatch = run(runner, "user", "add", "a.b", "--name", "A", input="one-password\nother\n")
    assert mismatch.exit_code != 0 and user(sessions, "a.b") is None
    short = run(runner, "user", "add", "a.b", "--name", "A", "--password-stdin", input="short\n")
    assert short.exit_code == 1 and "at least 8 characters" in short.output
    ok = run(runner, "user", "add", "a.b", "--name", "A", "--password-stdin", input="long-enough\n")
    assert ok.exit_code == 0
    again = run(
        runner, "user", "add", "A.B", "--name", "A", "--password-stdin", input="long-enough\n"
    )
    assert again.exit_code == 1 and "already exists" in again.output
    assert "Traceback" not in again.output


def test_user_add_with_unknown_team_creates_nothing(runner: CliRunner, sessions) -> None:
    result = run(
        runner,
        "user",
        "add",
        "x.y",
        "--name",
        "X",
        "--team",
        "nowhere",
        "--role",
        "rep",
        "--password-stdin",
        input="long-enough\n",
    )
    assert result.exit_code == 1 and "no team 'nowhere'" in result.output
    assert user(sessions, "x.y") is None


def test_user_list_deactivate_activate_and_set_password(
    runner: CliRunner, sessions, tmp_path
) -> None:
    run(runner, "org", "import", write(tmp_path, GOOD))
    listed = run(runner, "user", "list")
    assert listed.exit_code == 0
    assert "li.wei" in listed.output and "south (account_manager)" in listed.output
    assert "钱红" in listed.output and "3 user(s)" in listed.output
    assert run(runner, "user", "deactivate", "li.wei").exit_code == 0
    li = user(sessions, "li.wei")
    assert li is not None and not li.is_active
    assert "2 user(s)" in run(runner, "user", "list", "--no-inactive").output
    assert run(runner, "user", "activate", "li.wei").exit_code == 0
    result = run(
        runner, "user", "set-password", "li.wei", "--password-stdin", input="brand-new-pass\n"
    )
    assert result.exit_code == 0
    li = user(sessions, "li.wei")
    assert li is not None and li.is_active and password_matches(li, "brand-new-pass")
    missing = run(runner, "user", "deactivate", "nobody")
    assert missing.exit_code == 1 and "no user 'nobody'" in missing.output


# --- quotaflow org import ---------------------------------------------------------------------


def test_import_builds_the_tree_and_dated_memberships(
    runner: CliRunner, sessions, tmp_path
) -> None:
    result = run(runner, "org", "import", write(tmp_path, GOOD))
    assert result.exit_code == 0, result.output
    assert "teams: 4 created" in result.output
    assert "3 new user(s) cannot sign in" in result.output
    with sessions() as session:
        teams = {t.key: t for t in session.scalars(select(Team))}
        assert teams["company"].parent_id is None
        assert teams["east_a"].parent_id == teams["east"].id
        assert teams["south"].name == "South region"
        li = session.scalars(select(User).where(User.username == "li.wei")).one()
        spans = sorted((m.team.key, m.valid_from, m.valid_to) for m in li.memberships)
        assert spans == [
            ("east_a", date(2025, 1, 1), date(2025, 6, 1)),
            ("south", date(2025, 6, 1), None),
        ]
        qian = session.scalars(select(User).where(User.username == "qian.hong")).one()
        assert qian.is_admin and qian.display_name == "钱红" and qian.password_hash is None
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "org_import"))
        assert event is not None and event.details["memberships_added"] == 4


def test_import_twice_changes_nothing_the_second_time(
    runner: CliRunner, sessions, tmp_path
) -> None:
    path = write(tmp_path, GOOD)
    run(runner, "org", "import", path)
    again = run(runner, "org", "import", path)
    assert again.exit_code == 0
    assert "teams: 0 created" in again.output and "4 unchanged" in again.output
    assert count(sessions, Membership) == 4


def test_tree_shows_who_is_where_on_a_day(runner: CliRunner, tmp_path) -> None:
    run(runner, "org", "import", write(tmp_path, GOOD))
    march = run(runner, "org", "tree", "--on", "2025-03-01").output
    july = run(runner, "org", "tree", "--on", "2025-07-01").output
    assert "ACME Industrial (company)" in march
    assert march.index("Li Wei") < march.index("South region")  # still in east_a
    assert july.index("Li Wei") > july.index("South region")


def test_import_xlsx_with_date_cells(runner: CliRunner, sessions, tmp_path: Path) -> None:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(HEADER.split(","))
    sheet.append([None, None, None, "company", "ACME", None, None, None, None, None])
    sheet.append(
        [
            "li.wei",
            "Li Wei",
            None,
            "company",
            None,
            None,
            "rep",
            datetime(2025, 3, 1),
            date(2025, 9, 1),
            False,
        ]
    )
    sheet.append(
        ["zhang.min", "Zhang Min", None, "company", None, None, "rep", "2025-03-01", None, 1]
    )
    path = tmp_path / "org.xlsx"
    workbook.save(path)
    result = run(runner, "org", "import", str(path))
    assert result.exit_code == 0, result.output
    with sessions() as session:
        li = session.scalars(select(User).where(User.username == "li.wei")).one()
        assert (li.memberships[0].valid_from, li.memberships[0].valid_to) == (
            date(2025, 3, 1),
            date(2025, 9, 1),
        )
        assert session.scalars(select(User).where(User.username == "zhang.min")).one().is_admin


BAD = f"""{HEADER}
,,,company,ACME,,,,,
,,,east,East,company,,,,
li.wei,Li Wei,,east,,,account_manager,2025-01-01,,
bad name,X,notanemail,east,,,account_manager,,,
zhang.min,Zhang Min,,east,,,boss,01/02/2025,,maybe
,,,sth,South,,,,,
wu.xia,,,east,,,rep,,,
li.wei,Li W.,,east,,,,2025-02-01,,
,,,east,,south,,,,
huang.li,Huang Li,,east,,,rep,2025-05-01,2025-04-01,
"""


def test_bad_rows_are_all_reported_and_nothing_is_imported(
    runner: CliRunner, sessions, tmp_path
) -> None:
    result = run(runner, "org", "import", write(tmp_path, BAD))
    assert result.exit_code == 1
    out = result.output
    assert "nothing was imported" in out and "Traceback" not in out
    for expected in [
        "row 5: username 'bad name' must be",
        "row 5: 'notanemail' is not an e-mail address",
        "row 6: role 'boss' is unknown",
        "row 6: valid_from '01/02/2025' is not a date (use YYYY-MM-DD)",
        "row 6: is_admin 'maybe' must be yes or no",
        # a key the org doesn't have: a new team, which needs its place in the org
        "row 7: there is no team 'sth': use the key of an existing team (see Teams; keys: "
        "company, east), or give parent_team to create it",
        "row 8: new user 'wu.xia' needs a display_name",
        "row 9: user 'li.wei' in team 'east' needs a role",
        "row 10: team 'east' has parent_team 'south' here but 'company' in row 3",
        "row 11: valid_to 2025-04-01 is not after valid_from 2025-05-01",
    ]:
        assert expected in out, (expected, out)
    assert count(sessions, Team) == 0 and count(sessions, User) == 0


def test_conflicting_user_values_and_duplicate_memberships(runner: CliRunner, tmp_path) -> None:
    text = f"""{HEADER}
,,,company,ACME,,,,,
li.wei,Li Wei,,company,,,rep,2025-01-01,,
li.wei,Li Wei Jr,,company,,,rep,2025-01-01,,
"""
    out = run(runner, "org", "import", write(tmp_path, text)).output
    assert "row 4: user 'li.wei' has display_name 'Li Wei Jr' here but 'Li Wei' in row 3" in out
    assert "row 4: the same membership as row 3" in out


def test_cycles_and_moves_are_refused(runner: CliRunner, sessions, tmp_path) -> None:
    run(runner, "org", "import", write(tmp_path, GOOD))
    cycle = f"""{HEADER}
,,,loop_a,A,loop_b,,,,
,,,loop_b,B,loop_a,,,,
,,,east_a,,south,,,,
"""
    out = run(runner, "org", "import", write(tmp_path, cycle, "cycle.csv")).output
    assert "row 2: team 'loop_a' would be its own ancestor (loop_a → loop_b → loop_a)" in out
    assert "row 4: team 'east_a' is under 'east' in the database; an import does not move" in out
    assert count(sessions, Team) == 4


def test_header_problems(runner: CliRunner, tmp_path) -> None:
    out = run(runner, "org", "import", write(tmp_path, "username,colour\nli.wei,red\n")).output
    assert "row 1: unknown column 'colour'" in out
    assert "row 1: the column 'team' is missing" in out
    empty = run(runner, "org", "import", write(tmp_path, "", "empty.csv"))
    assert empty.exit_code == 1 and "row 1: the file is empty" in empty.output
    other = run(runner, "org", "import", write(tmp_path, "x", "org.txt"))
    assert other.exit_code == 1 and "expected a .csv or .xlsx file" in other.output


def test_pack_roles_and_dry_run(runner: CliRunner, sessions, tmp_path) -> None:
    text = f"""{HEADER}
,,,company,ACME,,,,,
li.wei,Li Wei,,company,,,regional_director,2025-01-01,,
"""
    path = write(tmp_path, text)
    refused = run(runner, "org", "import", path)
    assert "role 'regional_director' is unknown" in refused.output
    admin = run(runner, "org", "import", path, "--role", "regional_director=admin")
    assert admin.exit_code == 1 and "admin is a user flag" in admin.output
    dry = run(runner, "org", "import", path, "--role", "regional_director=manager", "--dry-run")
    assert dry.exit_code == 0 and "Dry run: nothing was changed." in dry.output
    assert count(sessions, Team) == 0
    real = run(runner, "org", "import", path, "--role", "regional_director=manager")
    assert real.exit_code == 0 and count(sessions, Membership) == 1


@pytest.mark.slow
def test_a_large_sheet_imports_in_one_go(runner: CliRunner, sessions, tmp_path) -> None:
    lines = [HEADER, ",,,company,ACME,,,,,"]
    lines += [f"rep{i:04d},Rep {i},,company,,,rep,2025-01-01,," for i in range(800)]
    result = run(runner, "org", "import", write(tmp_path, "\n".join(lines) + "\n"))
    assert result.exit_code == 0, result.output
    assert count(sessions, User) == 800
