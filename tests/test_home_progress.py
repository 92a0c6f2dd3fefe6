"""Home pages show pace against target on the demo company: a rep their own month, quarter
and fiscal year; a manager their team's totals and every rep of the team; the reps' targets
add up exactly to the team's, and the actuals are the KPI engine's figures."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from click.testing import CliRunner

from quotaflow.cli import main
from quotaflow.demo import DEMO_PASSWORD

TODAY = "2026-11-24"


def bars(html: str) -> dict[tuple[str, str], list[str]]:
    """(period, who) -> the row's cell texts."""
    out = {}
    for period, who, body in re.findall(
        r'<tr data-period="([^"]+)"[^>]*? data-who="([^"]+)"[^>]*>(.*?)</tr>', html, re.S
    ):
        out[(period, who)] = [
            re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", c)).strip()
            for c in re.findall(r"<td[^>]*>(.*?)</td>", body, re.S)
        ]
    return out


def amount(text: str) -> Decimal:
    return Decimal(re.sub(r"[^0-9.\-]", "", text))


def test_rep_and_manager_see_their_pace(runner: CliRunner, auth: Any, monkeypatch: Any) -> None:
    import quotaflow.web.views as views

    class Today:  # the pages use date.today(); the demo was built for TODAY
        @staticmethod
        def today() -> Any:
            from datetime import date

            return date.fromisoformat(TODAY)

    monkeypatch.setattr(views, "date", Today)
    assert runner.invoke(main, ["demo", "--today", TODAY, "--seed", "7"]).exit_code == 0

    auth.login("li.wei", DEMO_PASSWORD)
    mine = bars(auth.client.get("/").get_data(as_text=True))
    assert {p for p, _w in mine} == {"2026-11", "2026-Q4", "FY2026"}
    assert len({who for _p, who in mine}) == 1 and next(iter(mine))[1].startswith("rep-")
    assert len(mine) == 3 and all(amount(cells[3]) > 0 for cells in mine.values())
    shown = json.loads(
        runner.invoke(
            main,
            [
                "kpi",
                "show",
                "won_revenue",
                "--period",
                "2026-11",
                "--by",
                "rep",
                "--format",
                "json",
                "--today",
                TODAY,
            ],
        ).output
    )
    li = next(r for r in shown if r["rep"] == "li.wei")
    month = next(cells for (period, _w), cells in mine.items() if period == "2026-11")
    assert amount(month[2]) == Decimal(li["won_revenue"])
    auth.logout()

    auth.login("wang.fang", DEMO_PASSWORD)
    team = bars(auth.client.get("/").get_data(as_text=True))
    for period in ("2026-11", "2026-Q4", "FY2026"):
        teams = [
            cells for (p, who), cells in team.items() if p == period and who.startswith("team-")
        ]
        reps = [cells for (p, who), cells in team.items() if p == period and who.startswith("rep-")]
        assert len(teams) == 1 and len(reps) == 5
        assert sum(amount(r[3]) for r in reps) == amount(teams[0][3])  # parts sum to the whole
        assert sum(amount(r[2]) for r in reps) == amount(teams[0][2])
        # estimates (expected, projected) in whole units, to keep the table readable; actual
        # and target exact, without '.00' when whole (as here: the plan is in round figures)
        assert all(re.fullmatch(r"-?CN¥[\d,]+", c[i]) for c in teams + reps for i in (2, 3, 5, 6))
        # the gap: what is left to do, or how far ahead (never a minus sign to decode)
        assert all(re.fullmatch(r"CN¥[\d,]+( ahead)?", c[7]) for c in teams + reps)
    # a bar's colour says what the row's mark says: behind the pace expected by today or not
    # (not how much of the whole period's target is done: 69 % in November can be on pace)
    html = auth.client.get("/").get_data(as_text=True)
    rows = re.findall(r'<tr data-period[^>]*?( class="behind")?>(.*?)</tr>', html, re.S)
    assert rows and any(mark for mark, _ in rows) and not all(mark for mark, _ in rows)
    for mark, body in rows:
        meter = re.search(r'<meter[^>]*high="([\d.]+)"[^>]*value="([\d.]+)"', body)
        assert meter is not None
        high, value = (float(x) for x in meter.groups())
        assert (value < high - 1e-3) == bool(mark) or abs(value - high) < 1e-3
    auth.logout()

    # the head of sales sits in the company's top team: its rows carry the plan's whole total,
    # then one row a region (opening it shows its teams, a team's its reps), no rep one by one
    auth.login("head.of.sales", DEMO_PASSWORD)
    # the plan is worked out once a page, for its bars and its to-dos alike
    import quotaflow.targets.progress as progress_module
    import quotaflow.targets.services as services

    worked_out: list[str] = []
    real = services.breakdown

    def counted(*args: Any, **kwargs: Any) -> Any:
        worked_out.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(services, "breakdown", counted)
    monkeypatch.setattr(progress_module, "breakdown", counted)
    html = auth.client.get("/").get_data(as_text=True)
    assert worked_out == ["revenue_fy2026"]
    monkeypatch.setattr(services, "breakdown", real)
    monkeypatch.setattr(progress_module, "breakdown", real)
    company = bars(html)
    year = {who: cells for (p, who), cells in company.items() if p == "FY2026"}
    assert not any(who.startswith("rep-") for who in year)
    top = [cells for cells in year.values() if cells[1].startswith("ACME Industrial")]
    # (a Chinese reader's page brackets the "team" after a name in full-width: "（团队）")
    regions = {
        re.split(r" [(（]", cells[1])[0]: cells for cells in year.values() if cells not in top
    }
    assert len(top) == 1 and amount(top[0][3]) == Decimal("135000000.00")
    assert sorted(regions) == ["East region", "North region", "South region"]
    assert sum(amount(c[3]) for c in regions.values()) == amount(top[0][3])
    assert sum(amount(c[2]) for c in regions.values()) == amount(top[0][2])
    opens = dict(
        (name, int(team))
        for team, name in re.findall(r'href="/\?team=(\d+)"[^>]*>([^<]+)</a>', html)
    )
    assert sorted(opens) == sorted(regions)

    east = bars(auth.client.get(f"/?team={opens['East region']}").get_data(as_text=True))
    east_year = [cells for (p, _w), cells in east.items() if p == "FY2026"]
    assert [re.split(r" [(（]", c[1])[0] for c in east_year] == [
        "East region",
        "East Industrial",
        "East Key Accounts",
    ]
    assert sum(amount(c[3]) for c in east_year[1:]) == amount(east_year[0][3])
    assert amount(east_year[0][3]) == amount(regions["East region"][3])
    html = auth.client.get(f"/?team={opens['East region']}").get_data(as_text=True)
    assert 'data-testid="opened-team">' in html and "East region" in html
    key_accounts = re.search(r'href="/\?team=(\d+)"[^>]*>East Key Accounts<', html)
    assert key_accounts is not None
    team_page = bars(auth.client.get(f"/?team={key_accounts.group(1)}").get_data(as_text=True))
    assert sorted(who.split("-")[0] for (p, who) in team_page if p == "FY2026") == [
        "rep",
        "rep",
        "rep",
        "rep",
        "rep",
        "team",
    ]
    # a team id that is not one of theirs, or not a number, shows their own teams
    assert bars(auth.client.get("/?team=99999").get_data(as_text=True)) == company
    assert bars(auth.client.get("/?team=east").get_data(as_text=True)) == company
    auth.logout()

    # a team manager cannot open another region's team: they see their own
    auth.login("wang.fang", DEMO_PASSWORD)
    south = auth.client.get(f"/?team={opens['South region']}").get_data(as_text=True)
    assert bars(south) == team and "opened-team" not in south


def test_to_dos_point_at_what_waits(
    runner: CliRunner, auth: Any, app: Any, monkeypatch: Any
) -> None:
    """A rep's own stale deals and open self-assessment; a manager's reps to rate."""
    import quotaflow.web.views as views
    from quotaflow import db
    from quotaflow.org.services import user_by_username
    from quotaflow.packs.services import active_pack
    from quotaflow.records.models import Record
    from quotaflow.scorecards import cycle

    class Today:
        @staticmethod
        def today() -> Any:
            from datetime import date

            return date.fromisoformat(TODAY)

    monkeypatch.setattr(views, "date", Today)
    assert runner.invoke(main, ["demo", "--today", TODAY, "--seed", "7"]).exit_code == 0
    with db.transaction(app.extensions["quotaflow.sessions"]) as session:
        admin = user_by_username(session, "admin")
        assert admin is not None
        cycle.open_period(
            session,
            active_pack(session, "b2b_manufacturer"),
            "account_manager_monthly",
            "2026-11",
            admin,
        )

    auth.login("li.wei", DEMO_PASSWORD)
    html = auth.client.get("/").get_data(as_text=True)
    stale = re.findall(r'<li data-kind="stale"><a href="/records/(\d+)">Follow up: ', html)
    assert stale, "the demo has open deals untouched for weeks"
    with app.extensions["quotaflow.sessions"]() as session:
        owners = {session.get(Record, int(rid)).owner_id for rid in stale}  # type: ignore[union-attr]
        assert owners == {user_by_username(session, "li.wei").id}  # type: ignore[union-attr]
    assert "Write your self-assessment for 2026-11" in html
    auth.logout()
    auth.login("wang.fang", DEMO_PASSWORD)
    team_home = auth.client.get("/").get_data(as_text=True)
    assert "Rate 5 people for 2026-11" in team_home
    # a manager's follow-ups say whose deal each is
    assert re.search(
        r'data-kind="stale"><a href="/records/\d+">Follow up: [^<]+ of [^<]+ \(untouched', team_home
    )


def test_a_plan_that_cannot_be_split_is_explained_not_a_server_error(
    app: Any, auth: Any, make_user: Any, tmp_path: Any
) -> None:
    from quotaflow import db
    from quotaflow.packs.install import install_pack
    from quotaflow.packs.validate import load_pack
    from tests.packfiles import minimal_files, write_pack

    make_user("admin", is_admin=True, team="company")
    make_user("li.wei", team="east", role="account_manager")
    make_user("wang.fang", team="east", role="sales_manager")
    # a manual amount for a team the org no longer has: only the org can tell, at run time
    plan = (
        "kind: target_plan\nid: revenue\nkpi: won_revenue\nperiod: FY2026\ntotal: 1000\n"
        "split: [{level: team, method: manual, manual: {gone_team: 100}}]\n"
    )
    files = minimal_files({"targets/revenue.yaml": plan})
    with db.transaction(app.extensions["quotaflow.sessions"]) as session:
        install_pack(session, load_pack(write_pack(tmp_path, files)), actor="test")
    for username in ("admin", "wang.fang"):
        auth.login(username)
        home = auth.client.get("/")
        assert home.status_code == 200
        shown = auth.client.get("/targets/acme/revenue", follow_redirects=True)
        assert shown.status_code == 200 and "gone_team" in shown.get_data(as_text=True)
        auth.logout()
