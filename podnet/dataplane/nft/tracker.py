"""What a table holds since it was rendered, kept current change by change (any table).

A full render produces a frozen ``NftTable``; after it, changes are planned and committed one
at a time (``live``), and the applier keeps the result as its model of the kernel. Copying the
whole table for every change would make a change cost the table's size, so the tracker keeps
the current contents itself, as Felix's ``DeltaTracker`` keeps a dataplane's: it starts from
the rendered value and never changes it; a set's or map's elements are copied the first time
they change (once per set per render), and ``snapshot`` freezes the current contents into a
new value when one is needed (a full sync's diff, a drift check, tests).
"""
from __future__ import annotations

from collections.abc import Iterable, KeysView, Mapping, Set
from types import MappingProxyType

from .model import Element, KeyInfo, MapKey, NftChain, NftMap, NftSet, NftTable, TableId, Verdict, key_info


class TableTracker:
    """The current contents of one table; only its owner writes to it, after a commit."""

    def __init__(self, table: NftTable) -> None:
        self.id = table.id
        self._sets: dict[str, NftSet] = dict(table.sets)
        #: sets whose elements changed since the render (or the last snapshot): their elements
        self._elements: dict[str, set[Element]] = {}
        self._maps: dict[str, NftMap] = dict(table.maps)
        #: maps whose entries changed since the render (or the last snapshot): their entries
        self._entries: dict[str, dict[MapKey, Verdict]] = {}
        self._chains: dict[str, NftChain] = dict(table.chains)
        self._frozen: NftTable | None = table

    # -- reading ------------------------------------------------------------------------------

    def set_names(self) -> KeysView[str]:
        """The names of the sets there are (a live view)."""
        return self._sets.keys()

    def set_def(self, name: str) -> NftSet:
        """A set's definition (name, types, flags); its elements may be older than ``elements``."""
        return self._sets[name]

    def elements(self, name: str) -> Set[Element]:
        current = self._elements.get(name)
        return current if current is not None else self._sets[name].elements

    def map_def(self, name: str) -> NftMap:
        """A map's definition (name, key types); its entries may be older than ``entries``."""
        return self._maps[name]

    def entries(self, name: str) -> Mapping[MapKey, Verdict]:
        current = self._entries.get(name)
        return current if current is not None else self._maps[name].elements

    @property
    def chains(self) -> Mapping[str, NftChain]:
        return MappingProxyType(self._chains)

    def key_info(self, name: str) -> KeyInfo | None:
        return key_info(self._sets, self._maps, name)

    def snapshot(self) -> NftTable:
        """The current contents as a value. Freezing hands the copied elements back to the
        definitions, so the next change to a set copies it once more, and no sooner."""
        if self._frozen is None:
            for name, elems in self._elements.items():
                s = self._sets[name]
                self._sets[name] = NftSet(s.name, s.types, s.interval, frozenset(elems))
            for name, entries in self._entries.items():
                m = self._maps[name]
                self._maps[name] = NftMap(m.name, m.key_types, entries)
            self._elements.clear()
            self._entries.clear()
            self._frozen = NftTable(self.id.family, self.id.name, self._sets, self._maps, self._chains)
        return self._frozen

    # -- writing (the owner, once the kernel took the change) ----------------------------------

    def update_elements(self, name: str, gone: Iterable[Element], fresh: Iterable[Element]) -> None:
        current = self._elements.get(name)
        if current is None:
            current = self._elements[name] = set(self._sets[name].elements)
        current.difference_update(gone)
        current.update(fresh)
        self._frozen = None

    def update_entries(self, name: str, changed: Mapping[MapKey, Verdict | None]) -> None:
        """Set each key to its verdict; None removes the key."""
        current = self._entries.get(name)
        if current is None:
            current = self._entries[name] = dict(self._maps[name].elements)
        for key, verdict in changed.items():
            if verdict is None:
                current.pop(key, None)
            else:
                current[key] = verdict
        self._frozen = None

    def add_set(self, s: NftSet) -> None:
        self._sets[s.name] = s
        self._elements.pop(s.name, None)
        self._frozen = None

    def remove_set(self, name: str) -> None:
        self._sets.pop(name, None)
        self._elements.pop(name, None)
        self._frozen = None

    def put_chain(self, chain: NftChain) -> None:
        self._chains[chain.name] = chain
        self._frozen = None

    def remove_chain(self, name: str) -> None:
        self._chains.pop(name, None)
        self._frozen = None


class TrackedTable:
    """The part of the applier's model of the kernel (``TableModel``) that every live table
    answers the same way: from its ``TableTracker``. The live policy tables (plain and tiered)
    derive from it and add how they plan changes."""

    _tracker: TableTracker

    @property
    def id(self) -> TableId:
        return self._tracker.id

    def key_info(self, name: str) -> KeyInfo | None:
        return self._tracker.key_info(name)

    def snapshot(self) -> NftTable:
        return self._tracker.snapshot()

    @property
    def table(self) -> NftTable:
        """The table as it is now (a frozen value: later commits do not change it)."""
        return self._tracker.snapshot()

    @property
    def chains(self) -> Mapping[str, NftChain]:
        """The chains as they are now (a read-only view)."""
        return self._tracker.chains
