"""Collection aliases: the checks every engine makes before it changes any.

An alias is another name of one collection: every call that names a collection takes it
instead, so clients keep one name while the collection behind it is rebuilt and swapped
(for instance after ``reembed`` with a new model). Aliases point at collections, never
at other aliases, and no alias shares a name with a collection.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from .errors import AliasNotFound, CollectionExists, CollectionNotFound, InvalidRequest
from .types import validate_collection_name


def check_alias_changes(
    assign: Mapping[str, str],
    remove: Sequence[str],
    collections: Collection[str],
    aliases: Mapping[str, str],
) -> None:
    """Raise for the first change that cannot be made, so that a batch is made whole or
    not at all: ``assign`` maps aliases to the collections they are to name (new aliases,
    or ones that move), ``remove`` lists aliases to delete."""
    if not assign and not remove:
        raise InvalidRequest("no alias changes: give aliases to set or to delete")
    for alias in (*assign, *remove):
        validate_collection_name(alias, "alias")
    if both := sorted(set(assign) & set(remove)):
        raise InvalidRequest(f"alias {both[0]!r} is both set and deleted in one change")
    for alias in remove:
        if alias not in aliases:
            raise AliasNotFound(alias)
    for alias, target in assign.items():
        validate_collection_name(target)
        if alias in collections:
            raise CollectionExists(alias)
        if target not in collections:
            if target in aliases:
                raise InvalidRequest(
                    f"{target!r} is an alias (of {aliases[target]!r}); an alias names a "
                    "collection, not another alias"
                )
            raise CollectionNotFound(target)


def aliases_after(
    aliases: Mapping[str, str], assign: Mapping[str, str], remove: Sequence[str]
) -> dict[str, str]:
    """The alias table once the (checked) changes are made."""
    after = {a: c for a, c in aliases.items() if a not in remove}
    after.update(assign)
    return after
