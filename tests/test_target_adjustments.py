"""Mid-period target adjustments: the parts still sum exactly, every parent keeps its amount,
each change is a version with its reason and an audit event, breakdown() follows it, and
refusals are plain (an amount over the team's, a team that is not yours, no reason); the
page lets a manager move target with their input kept on a mistake."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from quotaflow.audit.models import AuditEvent
from quotaflow.cli import main
from quotaflow.demo import DEMO_PASSWORD
from quotaflow.org.services import user_by_username
from quotaflow.packs.services import active_pack
from quotaflow.targets.adjustments import adjust_target, resplit_target, versions_of
from quotaflow.targets.decompose import (
    Allocation,
    LevelRule,
    OrgNode,
    TargetError,
    adjust,
    decompose,
)
from quotaflow.targets.services import breakdown

TODAY = date(2026, 11, 24)


def tree(sizes: list[int]) -> OrgNode:
    return OrgNode("company", "company", "Company", 1, [
        OrgNode(f"t{i}", "team", f"T{i}", 10 + i, [OrgNode(f"r{i}_{j}", "rep", f"R{i}{j}", 100 * i + j) for j in range(n)])
        for i, n in enumerate(sizes)
    ])  # fmt: skip


def sums_hold(node: Allocation) -> bool:
    return not node.children or (
        sum(c.amount for c in node.children) == node.amount
        and all(sums_hold(c) for c in node.children)
    )


@given(
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=5),
    total=st.decimals(min_value=0, max_value=10**9, places=2),
    pick=st.integers(0, 10**6),
    share=st.fractions(min_value=0, max_value=1),
)
def test_an_adjustment_keeps_every_parent_and_sums_exactly(
    sizes: list[int], total: Decimal, pick: int, share: Any
) -> None:
    start = decompose(total, tree(sizes), [LevelRule("equal"), LevelRule("equal")])
    nodes = [a for a in start.walk() if a.node.kind != "company"]
    chosen = nodes[pick % len(nodes)]
    parent = next(a for a in start.walk() if chosen in a.children)
    value = (parent.amount * Decimal(share.numerator) / Decimal(share.denominator)).quantize(
        Decimal("0.01"), rounding="ROUND_DOWN"
    )
    if len(parent.children) == 1:
        value = parent.amount
    after = adjust(start, chosen.node.key, value)
    assert sums_hold(after) and after.amount == start.amount
    assert after.find(chosen.node.key).amount == value  # type: ignore[union-attr]
    for a in after.walk():
        if (
            a.node.kind == "team"
            and chosen.node.kind == "rep"
            and chosen.node.key not in {c.node.key for c in a.children}
        ):
            assert a.amount == start.find(a.node.key).amount  # type: ignore[union-attr]


def test_adjust_refuses_what_cannot_be() -> None:
    start = decompose(Decimal("1000"), tree([2, 1]), [LevelRule("equal"), LevelRule("equal")])
    with pytest.raises(TargetError, match="between 0 and 500.00"):
        adjust(start, "r0_0", Decimal("600"))
    with pytest.raises(TargetError, match="the only part of T1"):
        adjust(start, "r1_0", Decimal("10"))
    with pytest.raises(TargetError, match="no 'nobody'"):
        adjust(start, "nobody", Decimal("1"))
    with pytest.raises(TargetError, match="total is set in the pack"):
        adjust(start, "company", Decimal("1"))


@pytest.fixture
def demo(runner: CliRunner, sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    result = runner.invoke(main, ["demo", "--today", TODAY.isoformat(), "--seed", "7"])
    assert result.exit_code == 0, result.output
    return sessions


def test_versions_reasons_audit_and_refusals_on_the_demo(demo: sessionmaker[Session]) -> None:
    with demo() as session:
        pack = active_pack(session, "b2b_manufacturer")
        manager = user_by_username(session, "wang.fang")
        assert manager is not None
        team = (
            breakdown(session, pack, "revenue_fy2026", today=TODAY)
            .tiers["ideal"]
            .find("east_key_accounts")
        )
        assert team is not None
        row = adjust_target(session, pack, "revenue_fy2026", node_key="li.wei", amount="8,000,000",
                            reason="Took over the Gree account", actor=manager, today=TODAY)  # fmt: skip
        assert row.version_no == 1 and row.after["li.wei"] == "8000000.00"
        assert (
            sum(Decimal(v) for v in row.after.values())
            == team.amount
            == sum(Decimal(v) for v in row.before.values())
        )
        now = breakdown(session, pack, "revenue_fy2026", today=TODAY)
        ideal = now.tiers["ideal"]
        assert ideal.find("li.wei").amount == Decimal("8000000.00")  # type: ignore[union-attr]
        assert ideal.find("east_key_accounts").amount == team.amount  # type: ignore[union-attr]
        assert sum(now.tiers["ideal"].find("li.wei").phases) == Decimal("8000000.00")  # type: ignore[union-attr]
        assert now.tiers["stretch"].amount == Decimal("162000000.00") and sums_hold(
            now.tiers["stretch"]
        )
        for kwargs, message in (
            ({"node_key": "wu.xia", "amount": "1", "reason": "x"}, "not one of your teams"),
            ({"node_key": "li.wei", "amount": "1e12", "reason": "x"}, "can get between 0 and"),
            ({"node_key": "li.wei", "amount": "lots", "reason": "x"}, "'lots' is not an amount"),
            ({"node_key": "li.wei", "amount": "lots", "reason": ""}, "'lots' is not an amount"),
            ({"node_key": "li.wei", "amount": "1", "reason": " "}, "Say why the target changes"),
        ):
            with pytest.raises(TargetError, match=message):
                adjust_target(session, pack, "revenue_fy2026", actor=manager, today=TODAY, **kwargs)
        session.commit()
        assert [
            v.version_no for v in versions_of(session, "b2b_manufacturer", "revenue_fy2026")
        ] == [1]
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "target_adjust")
        ).one()
        assert (
            event.actor == "wang.fang" and event.details["reason"] == "Took over the Gree account"
        )


def test_a_manager_moves_target_on_the_page(demo: sessionmaker[Session], auth: Any) -> None:
    auth.login("wang.fang", DEMO_PASSWORD)
    page = auth.client.get("/targets/b2b_manufacturer/revenue_fy2026")
    html = page.get_data(as_text=True)
    assert (
        page.status_code == 200
        and 'data-node="li.wei"' in html
        and 'data-node="wu.xia"' not in html
    )
    bad = auth.post(
        "/targets/b2b_manufacturer/revenue_fy2026/adjust",
        {"node": "li.wei", "amount": "999999999999", "reason": "Gree"},
    )
    assert bad.status_code == 400
    text = bad.get_data(as_text=True)
    assert (
        "can get between 0 and" in text
        and 'value="999999999999"' in text
        and 'value="Gree"' in text
    )
    # reloading the address the refusal left shows the plan, not "Not allowed here"
    reload = auth.client.get("/targets/b2b_manufacturer/revenue_fy2026/adjust")
    assert reload.status_code == 303
    assert reload.headers["Location"] == "/targets/b2b_manufacturer/revenue_fy2026"
    auth.post("/locale", {"locale": "zh", "next": "/"})
    typo = auth.post(
        "/targets/b2b_manufacturer/revenue_fy2026/adjust",
        {"node": "li.wei", "amount": "8OOOOOO", "reason": ""},
    ).get_data(as_text=True)
    assert "“8OOOOOO”不是金额" in typo  # the figure first, in the reader's language
    too_much = auth.post(
        "/targets/b2b_manufacturer/revenue_fy2026/adjust",
        {"node": "li.wei", "amount": "999999999999", "reason": "Gree"},
    ).get_data(as_text=True)
    assert "的目标只能在 0 到" in too_much  # the split's own refusals too
    auth.post("/locale", {"locale": "en", "next": "/"})
    ok = auth.post(
        "/targets/b2b_manufacturer/revenue_fy2026/adjust",
        {"node": "li.wei", "amount": "8000000", "reason": "Gree"},
    )
    assert ok.status_code == 302
    after = auth.client.get("/targets/b2b_manufacturer/revenue_fy2026").get_data(as_text=True)
    assert "Version 1" in after and "Gree" in after and "adjusted" in after
    auth.logout()
    auth.login("li.wei", DEMO_PASSWORD)
    assert auth.client.get("/targets/b2b_manufacturer/revenue_fy2026").status_code == 403


def _targets(session: Session, pack: Any) -> dict[str, Decimal]:
    ideal = breakdown(session, pack, "revenue_fy2026", today=TODAY).tiers["ideal"]
    return {a.node.key: a.amount for a in ideal.walk()}


def test_the_org_changing_moves_no_target_until_the_plan_is_split_again(
    demo: sessionmaker[Session], auth: Any
) -> None:
    from quotaflow.org.services import add_membership, add_user, team_by_key

    with demo() as session:
        pack = active_pack(session, "b2b_manufacturer")
        before = _targets(session, pack)
        # a rep joins East Key Accounts today: nobody's target moves, theirs is not there yet
        newcomer = add_user(session, username="new.rep", display_name="New Rep")
        team = team_by_key(session, "east_key_accounts")
        assert team is not None
        add_membership(session, user=newcomer, team=team, role="account_manager", valid_from=TODAY)
        session.commit()
        assert _targets(session, active_pack(session, "b2b_manufacturer")) == before
        manager = user_by_username(session, "wang.fang")
        admin = user_by_username(session, "admin")
        assert manager is not None and admin is not None
        adjust_target(session, pack, "revenue_fy2026", node_key="li.wei", amount="8000000",
                      reason="Gree", actor=manager, today=TODAY)  # fmt: skip
        with pytest.raises(TargetError, match="already has this target"):  # an empty version
            adjust_target(session, pack, "revenue_fy2026", node_key="li.wei", amount="8000000",
                          reason="again", actor=manager, today=TODAY)  # fmt: skip
        with pytest.raises(TargetError, match="Only an administrator"):
            resplit_target(session, pack, "revenue_fy2026", reason="x", actor=manager, today=TODAY)
        row = resplit_target(
            session, pack, "revenue_fy2026", reason="New Rep joined", actor=admin, today=TODAY
        )
        session.commit()
        after = _targets(session, pack)
        team_before, team_after = before["east_key_accounts"], after["east_key_accounts"]
        assert after["new.rep"] > 0 and team_after == team_before  # the team keeps its amount
        assert after["li.wei"] < before["li.wei"]  # shared with the newcomer, Gree undone
        assert row.version_no == 2 and row.after["@on"] == TODAY.isoformat()
        assert row.before["li.wei"] == "8000000.00" and row.after["new.rep"] == str(
            after["new.rep"]
        )
        with pytest.raises(TargetError, match="every target would stay as it is"):
            resplit_target(session, pack, "revenue_fy2026", reason="y", actor=admin, today=TODAY)
        actions = set(session.scalars(select(AuditEvent.action)))
        assert {"target_adjust", "target_resplit"} <= actions
    # the page says which day's team the split is on, and lists the version by name
    auth.login("admin", DEMO_PASSWORD)
    html = auth.client.get("/targets/b2b_manufacturer/revenue_fy2026").get_data(as_text=True)
    assert "Split on the team as it was on" in html
    assert "split again on the team of Nov 24, 2026" in html  # the day as pages write days
    assert "New Rep:" in html  # by name in the before/after list, not new.rep
    # the list names only what changed: the parts of East Key Accounts (its five reps and the
    # newcomer), not the other 20 parts of the split
    changed = re.findall(r"<summary>(\d+) parts changed</summary>", html)
    assert changed and int(changed[0]) == 6
    auth.logout()
    auth.login("wang.fang", DEMO_PASSWORD)
    refused = auth.post("/targets/b2b_manufacturer/revenue_fy2026/resplit", {"reason": "x"})
    assert refused.status_code == 403


def test_after_a_split_again_someone_added_the_same_day_or_back_dated_moves_nothing(
    demo: sessionmaker[Session],
) -> None:
    from datetime import timedelta

    from quotaflow.org.services import add_membership, add_user, team_by_key
    from quotaflow.targets.services import outside_split

    with demo() as session:
        pack = active_pack(session, "b2b_manufacturer")
        admin = user_by_username(session, "admin")
        first = add_user(session, username="first.rep", display_name="First Rep")
        team = team_by_key(session, "east_key_accounts")
        assert admin is not None and team is not None
        add_membership(session, user=first, team=team, role="account_manager", valid_from=TODAY)
        resplit_target(session, pack, "revenue_fy2026", reason="First Rep", actor=admin,
                       today=TODAY)  # fmt: skip
        session.commit()
        split = _targets(session, pack)
        assert split["first.rep"] > 0
        # later that day another rep joins another team, one with a membership dated back to
        # the period's start: the split of the day is of the people it was made with
        other = team_by_key(session, "east_industrial")
        assert other is not None
        for username, since in (("same.day", TODAY), ("back.dated", TODAY - timedelta(300))):
            user = add_user(session, username=username, display_name=username.title())
            add_membership(session, user=user, team=other, role="account_manager",
                           valid_from=since)  # fmt: skip
        # and a rep of the split is put in that team too, dated back
        li = user_by_username(session, "li.wei")
        assert li is not None
        add_membership(session, user=li, team=other, role="account_manager",
                       valid_from=TODAY - timedelta(300))  # fmt: skip
        session.commit()
        assert _targets(session, pack) == split  # nobody's target moved, no version made
        assert len(versions_of(session, pack.id, "revenue_fy2026")) == 1
        named = {
            (o.node.key, o.team_name) for o in outside_split(session, pack, "revenue_fy2026", TODAY)
        }  # said, so an admin can split again
        assert named == {
            ("same.day", "East Industrial"), ("back.dated", "East Industrial"),
            ("li.wei", "East Industrial"),
        }  # fmt: skip
        resplit_target(session, pack, "revenue_fy2026", reason="two more", actor=admin,
                       today=TODAY)  # fmt: skip
        session.commit()
        after = _targets(session, pack)
        assert after["same.day"] > 0 and after["back.dated"] > 0
        assert outside_split(session, pack, "revenue_fy2026", TODAY) == []


def test_people_who_joined_after_the_split_are_named_until_it_is_split_again(
    demo: sessionmaker[Session], auth: Any, monkeypatch: Any
) -> None:
    import quotaflow.targets.views
    import quotaflow.web.views
    from quotaflow.org.services import add_membership, add_user, team_by_key
    from quotaflow.targets.services import outside_split

    class Today:  # the pages use date.today(); the demo was built for TODAY
        @staticmethod
        def today() -> date:
            return TODAY

    for module in (quotaflow.targets.views, quotaflow.web.views):
        monkeypatch.setattr(module, "date", Today)
    with demo() as session:
        pack = active_pack(session, "b2b_manufacturer")
        assert outside_split(session, pack, "revenue_fy2026", TODAY) == []
        newcomer = add_user(session, username="new.rep", display_name="New Rep")
        team = team_by_key(session, "east_key_accounts")
        assert team is not None
        add_membership(session, user=newcomer, team=team, role="account_manager", valid_from=TODAY)
        session.commit()
        found = outside_split(session, pack, "revenue_fy2026", TODAY)
        assert [(o.node.key, o.team_name) for o in found] == [("new.rep", "East Key Accounts")]
    plan_url = "/targets/b2b_manufacturer/revenue_fy2026"
    todo = "No target in Revenue target FY2026 yet (joined after the split): New Rep"
    # their manager is told on the home page and on the plan; an administrator too
    auth.login("wang.fang", DEMO_PASSWORD)
    assert todo in auth.client.get("/").get_data(as_text=True)
    page = auth.client.get(plan_url).get_data(as_text=True)
    assert 'data-testid="outside-split"' in page and "New Rep · East Key Accounts" in page
    assert "An administrator splits the plan again" in page
    auth.logout()
    auth.login("zhao.qiang", DEMO_PASSWORD)  # another team's manager: not theirs to see
    assert "No target in" not in auth.client.get("/").get_data(as_text=True)
    assert "outside-split" not in auth.client.get(plan_url).get_data(as_text=True)
    auth.logout()
    auth.login("admin", DEMO_PASSWORD)
    assert todo in auth.client.get("/").get_data(as_text=True)
    page = auth.client.get(plan_url).get_data(as_text=True)
    assert 'data-testid="outside-split"' in page and "team below to give them a target" in page
    with demo() as session:
        admin = user_by_username(session, "admin")
        resplit_target(session, active_pack(session, "b2b_manufacturer"), "revenue_fy2026",
                       reason="New Rep joined", actor=admin, today=TODAY)  # fmt: skip
        session.commit()
    assert "No target in" not in auth.client.get("/").get_data(as_text=True)
    assert "outside-split" not in auth.client.get(plan_url).get_data(as_text=True)


def test_an_org_set_up_after_the_plan_began_follows_the_org_until_a_day_is_pinned(
    sessions: sessionmaker[Session],
) -> None:
    from quotaflow import db
    from quotaflow.org.services import add_membership, add_user, ensure_team
    from quotaflow.packs.install import install_pack
    from quotaflow.packs.validate import load_pack
    from quotaflow.resources import stock_pack_dir

    march = date(2026, 3, 10)
    with db.transaction(sessions) as session:
        install_pack(session, load_pack(stock_pack_dir()), actor="test")
        company = ensure_team(session, key="acme", name="ACME")
        east = ensure_team(session, key="east", name="East", parent=company)
        team = ensure_team(session, key="east_key_accounts", name="East KA", parent=east)
        admin = add_user(session, username="admin", display_name="Admin", is_admin=True)
        first = add_user(session, username="first", display_name="First")
        add_membership(session, user=first, team=team, role="account_manager",
                       valid_from=date(2026, 3, 1))  # fmt: skip
    with db.transaction(sessions) as session:
        pack = active_pack(session, "b2b_manufacturer")
        alone = breakdown(session, pack, "revenue_fy2026", today=march).tiers["ideal"]
        assert alone.find("first").amount == alone.amount  # type: ignore[union-attr]
        second = add_user(session, username="second", display_name="Second")
        add_membership(session, user=second, team=team, role="account_manager",
                       valid_from=date(2026, 3, 5))  # fmt: skip
    with db.transaction(sessions) as session:
        # nobody was there on the plan's first day: the split follows the org being set up,
        # so the first person added does not keep the whole plan
        pack = active_pack(session, "b2b_manufacturer")
        two = breakdown(session, pack, "revenue_fy2026", today=march).tiers["ideal"]
        assert two.find("first").amount == two.find("second").amount == two.amount / 2  # type: ignore[union-attr]
        # the administrator pins the day once the org is set up: later hires move nothing
        resplit_target(session, pack, "revenue_fy2026", reason="org set up",
                       actor=session.merge(admin), today=march)  # fmt: skip
        third = add_user(session, username="third", display_name="Third")
        add_membership(
            session, user=third, team=team, role="account_manager", valid_from=date(2026, 3, 11)
        )
    with db.transaction(sessions) as session:
        pack = active_pack(session, "b2b_manufacturer")
        later = breakdown(session, pack, "revenue_fy2026", today=date(2026, 4, 1))
        assert later.on == march and later.tiers["ideal"].find("third") is None
        assert later.tiers["ideal"].find("first").amount == two.amount / 2  # type: ignore[union-attr]


def test_a_second_adjustment_leaves_the_first_where_it_was() -> None:
    start = decompose(Decimal("1000"), tree([4]), [LevelRule("equal"), LevelRule("equal")])
    cut = adjust(start, "r0_0", Decimal("150"))  # 250 -> 150: the other three share +100
    shares = [cut.find(f"r0_{j}").amount for j in range(4)]  # type: ignore[union-attr]
    assert shares[0] == Decimal("150")
    assert sorted(shares[1:]) == [Decimal("283.33"), Decimal("283.33"), Decimal("283.34")]
    raised = adjust(cut, "r0_1", Decimal("400"))  # r0_0, adjusted before, keeps its 150
    amounts = [raised.find(f"r0_{j}").amount for j in range(4)]  # type: ignore[union-attr]
    assert amounts[0] == Decimal("150") and amounts[1] == Decimal("400")
    assert sum(amounts) == Decimal("1000") and sums_hold(raised)
    with pytest.raises(TargetError, match="held by parts adjusted before"):
        adjust(raised, "r0_2", Decimal("900"))  # 1000 - 150 - 400 held: at most 450
    every = adjust(adjust(raised, "r0_2", Decimal("225")), "r0_3", Decimal("225"))
    last = adjust(every, "r0_3", Decimal("100"))  # all adjusted: they all share again
    assert sum(last.find(f"r0_{j}").amount for j in range(4)) == Decimal("1000")  # type: ignore[union-attr]
