"""Capabilities (admin, manager, rep) and how membership roles map to them.

`admin` comes only from `User.is_admin` (it is company-wide, not tied to a team). A membership's
role is a pack's own word (account_manager, sales_manager...); a mapping turns it into `manager`
or `rep`. Packs may pass their own mapping; these defaults cover the stock pack and plain names.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from quotaflow.org.models import Membership


class Capability(StrEnum):
    """What a person may do, whatever their pack calls their role."""

    ADMIN = "admin"
    MANAGER = "manager"
    REP = "rep"


DEFAULT_ROLE_CAPABILITIES: Mapping[str, str] = MappingProxyType(
    {
        "manager": "manager",
        "rep": "rep",
        "account_manager": "rep",
        "sales_manager": "manager",
        "head_of_sales": "manager",
    }
)
TEAM_CAPABILITIES = (Capability.MANAGER, Capability.REP)


class Person(Protocol):
    """Anything with a user id and the admin flag (the ORM User or the signed-in user)."""

    @property
    def id(self) -> int: ...

    @property
    def is_admin(self) -> bool: ...


def check_role_capabilities(role_capabilities: Mapping[str, str]) -> None:
    """Refuse a mapping that grants anything but manager or rep through a team role."""
    allowed = {c.value for c in TEAM_CAPABILITIES}
    for role, capability in role_capabilities.items():
        if capability not in allowed:
            raise ValueError(
                f"role '{role}' maps to '{capability}'; a team role can only be "
                f"{' or '.join(sorted(allowed))} (admin is a user flag)"
            )


def roles_with(
    capability: Capability, role_capabilities: Mapping[str, str] = DEFAULT_ROLE_CAPABILITIES
) -> list[str]:
    """The role names that grant `capability`, sorted."""
    return sorted(r for r, c in role_capabilities.items() if c == capability.value)


def capability_of_role(
    role: str, role_capabilities: Mapping[str, str] = DEFAULT_ROLE_CAPABILITIES
) -> Capability | None:
    """The capability a membership role grants, or None for a role the mapping does not know."""
    value = role_capabilities.get(role)
    return Capability(value) if value in {c.value for c in TEAM_CAPABILITIES} else None


def capabilities_of(
    session: Session,
    person: Person,
    on: date,
    role_capabilities: Mapping[str, str] = DEFAULT_ROLE_CAPABILITIES,
) -> frozenset[Capability]:
    """Every capability the person holds on a day (admin flag plus valid memberships)."""
    held = {Capability.ADMIN} if person.is_admin else set()
    roles = session.scalars(
        select(Membership.role).where(
            Membership.user_id == person.id,
            Membership.valid_from <= on,
            or_(Membership.valid_to.is_(None), Membership.valid_to > on),
        )
    )
    for role in roles:
        capability = capability_of_role(role, role_capabilities)
        if capability is not None:
            held.add(capability)
    return frozenset(held)


def main_capability(held: frozenset[Capability]) -> Capability | None:
    """The broadest capability held: admin, then manager, then rep."""
    for capability in (Capability.ADMIN, Capability.MANAGER, Capability.REP):
        if capability in held:
            return capability
    return None
