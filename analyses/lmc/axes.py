"""Axis bookkeeping for the permutation tracer: a union-find over "axis variables".

Every dimension of every tensor seen in a forward pass carries an axis variable. Two dimensions
that must be permuted together (the output axis of ``fc1.weight``, its bias and the input axis
of ``fc2.weight``) end up in one set. A set is *fixed* when some operation depends on the order
of its indices (model inputs and outputs, indexing a position, an unknown function). A variable
may be *composite*: the row-major product of child variables, as when attention splits a
``3*D`` axis into ``(3, heads, head_dim)``; permuting a child then moves blocks of the parent.

Every fix records a *reason* (``ORDER`` by default: the order legitimately matters; an unknown
function's name when the tracer had no rule for it), so that the sets kept in place only because
of an unknown function can be reported (:meth:`AxisSets.frozen_by_unknown`).

>>> s = AxisSets()
>>> a, b = s.new(4), s.new(4)
>>> s.fix(b, reason="unknown:flip")
>>> _ = s.union(a, b)
>>> s.is_fixed(a), s.reasons_of(a)
(True, {'unknown:flip'})
"""

from __future__ import annotations

ORDER = "order"  # the order of the indices matters (inputs, outputs, positions, slices)
UNKNOWN = "unknown:"  # prefix: a function the tracer has no rule for



class AxisSets:
    """Union-find over integer axis variables with a size, a fixed flag and composites."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.size: list[int] = []
        self.fixed: list[bool] = []
        self.children: dict[int, list[int]] = {}
        self.reasons: dict[int, set[str]] = {}  # root -> why it is fixed

    def new(self, size: int, fixed: bool = False, reason: str = ORDER) -> int:
        v = len(self.parent)
        self.parent.append(v)
        self.size.append(int(size))
        self.fixed.append(bool(fixed) or int(size) <= 1)
        if fixed and int(size) > 1:
            self.reasons[v] = {reason}
        return v

    def find(self, v: int) -> int:
        root = v
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[v] != root:
            self.parent[v], v = root, self.parent[v]
        return root

    def fix(self, v: int, reason: str = ORDER) -> None:
        r = self.find(v)
        self.fixed[r] = True
        self.reasons.setdefault(r, set()).add(reason)

    def reasons_of(self, v: int) -> set[str]:
        return set(self.reasons.get(self.find(v), ()))

    def is_fixed(self, v: int) -> bool:
        return self.fixed[self.find(v)]

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if self.size[ra] != self.size[rb]:  # cannot happen for valid ops; stay conservative
            self.fix(ra)
            self.fix(rb)
            return ra
        self.parent[rb] = ra
        self.fixed[ra] = self.fixed[ra] or self.fixed[rb]
        if rb in self.reasons:
            self.reasons.setdefault(ra, set()).update(self.reasons.pop(rb))
        ca, cb = self.children.pop(ra, None), self.children.pop(rb, None)
        if ca is not None and cb is not None:
            if [self.size[self.find(c)] for c in ca] == [self.size[self.find(c)] for c in cb]:
                for x, y in zip(ca, cb):
                    self.union(x, y)
            else:  # two different factorisations of one axis: keep it in place
                self.fix(ra)
                for c in ca + cb:
                    self.fix(c)
            self.children[self.find(ra)] = ca
        elif ca is not None or cb is not None:
            self.children[self.find(ra)] = ca if ca is not None else cb
        return self.find(ra)

    def split(self, v: int, sizes: list[int]) -> list[int]:
        """Children of ``v`` with the given sizes (created, or reused when they already match)."""
        r = self.find(v)
        kids = self.children.get(r)
        if kids is not None and [self.size[self.find(c)] for c in kids] == list(sizes):
            return list(kids)
        if kids is not None:  # a different factorisation: keep everything in place
            self.fix(r)
            for c in kids:
                self.fix(c)
            return [self.new(s, fixed=True) for s in sizes]
        kids = [self.new(s) for s in sizes]
        self.children[r] = kids
        return list(kids)

    def merge(self, vs: list[int]) -> int:
        """A new composite variable whose children are ``vs`` (row-major)."""
        total = 1
        for v in vs:
            total *= self.size[self.find(v)]
        m = self.new(total)
        self.children[m] = list(vs)
        return m

    def leaves(self, v: int) -> list[int]:
        """Root ids of the atomic variables that make up ``v`` (row-major order)."""
        r = self.find(v)
        kids = self.children.get(r)
        if kids is None:
            return [r]
        out: list[int] = []
        for c in kids:
            out.extend(self.leaves(c))
        return out

    def settle(self) -> None:
        """Propagate fixedness from composite variables down to their children."""
        changed = True
        while changed:
            changed = False
            for r, kids in list(self.children.items()):
                if self.find(r) != r or not self.fixed[r]:
                    continue
                for c in kids:
                    extra = self.reasons.get(r, {ORDER}) - self.reasons_of(c)
                    if not self.is_fixed(c) or extra:
                        for why in extra or {ORDER}:
                            self.fix(c, why)
                        changed = True

    def frozen_by_unknown(self, v: int) -> list[str]:
        """The unknown functions that alone keep ``v``'s set in place (empty when the set is
        free or its order matters for a known reason)."""
        if not self.is_fixed(v) or self.size[self.find(v)] <= 1:
            return []
        why = self.reasons_of(v)
        if not why or any(not w.startswith(UNKNOWN) for w in why):
            return []
        return sorted(w[len(UNKNOWN):] for w in why)
