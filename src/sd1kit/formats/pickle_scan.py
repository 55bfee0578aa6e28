"""A static walk over one pickle: the globals it names and the shape of what it would build, with hard bounds.

Nothing is unpickled. `pickletools.genops` yields the opcodes; this walk replays their effect on a stack of
placeholders (each knows the depth and the size of the object graph it stands for, shared references counted
every time they are used), so a pickle is refused before any C code would recurse through it or hash it:

- nesting deeper than MAX_DEPTH (a 10^6-deep tuple crashes CPython's recursive hash and repr with SIGSEGV);
- an object graph of more than MAX_NODES nodes counting shared references (a tuple of two references to the
  previous tuple, 80 times over, is 80 opcodes and 2^80 work to hash or walk);
- a dict key or set member that is itself larger than MAX_KEY_NODES;
- more than MAX_OPS opcodes, a memo larger than MAX_MEMO, a stream longer than its byte cap.

The opcode semantics follow the stack effects that `pickletools` declares for each opcode (stack_before /
stack_after), as pickletools.dis uses them.
"""

from __future__ import annotations

import pickletools
from pathlib import Path

from sd1kit.errors import BadFileError

MAX_DEPTH = 100  # a real checkpoint nests about 8 deep (dict > dict > tensor rebuild > args tuple > size tuple)
MAX_NODES = 1 << 24
MAX_KEY_NODES = 1000
MAX_OPS = 1_000_000  # ~25 per tensor: 40,000 tensors (an SD1 checkpoint with EMA and optimizer state: ~10,000)
MAX_MEMO = 1_000_000
MAX_PICKLE_BYTES = 64 << 20
MAX_PROPAGATION = 2_000_000  # updates of holders when a container grows after being nested (pickler output: none)

_MARK = object()
_MUTATORS = {"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"}
_HASHED_ALL = {"ADDITEMS", "FROZENSET"}  # every item becomes a set member
_HASHED_KEYS = {"SETITEM", "SETITEMS", "DICT"}  # every other item becomes a dict key
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}


class _Node:
    """A placeholder for one object: its nesting depth, the size of its graph (shared references counted each
    time), its value where it is a string or an int, and the nodes that hold it (once it is held)."""

    __slots__ = ("depth", "size", "value", "parents")

    def __init__(self, depth: int = 0, size: int = 1, value=None):
        self.depth, self.size, self.value, self.parents = depth, size, value, None


class CappedStream:
    """A file-like view that refuses to read past `cap` bytes from where it started (genops reads whole args)."""

    def __init__(self, f, cap: int, path: Path):
        self.f, self.cap, self.path, self.start = f, cap, path, f.tell()

    def _room(self, n: int) -> int:
        room = self.cap - (self.f.tell() - self.start)
        if n > room:
            raise BadFileError(self.path, f"pickle longer than {self.cap >> 20} MiB: refused")
        return n

    def read(self, n: int = -1) -> bytes:
        return self.f.read(self._room(n if n >= 0 else self.cap))

    def readline(self) -> bytes:
        room = self.cap - (self.f.tell() - self.start)
        line = self.f.readline(min(room, 1 << 20) + 1)
        if len(line) > room:
            raise BadFileError(self.path, f"pickle longer than {self.cap >> 20} MiB: refused")
        return line

    def tell(self) -> int:
        return self.f.tell()

    def peek(self, n: int = 1) -> bytes:
        return self.f.peek(n) if hasattr(self.f, "peek") else b""


def scan_stream(stream, path: Path, found: list[str]) -> list:
    """Walk one pickle up to STOP; append the globals it references to `found`; return the values left on the
    stack at STOP (a one-element list for a well-formed pickle; scalars keep their value, e.g. an int)."""
    stack: list = []
    memo: dict = {}
    ops, budget = 0, [MAX_PROPAGATION]
    try:
        for op, arg, _pos in pickletools.genops(stream):
            ops += 1
            if ops > MAX_OPS:
                raise BadFileError(path, f"pickle of more than {MAX_OPS} opcodes: refused")
            if op.name == "STOP":
                return [n.value if isinstance(n, _Node) else None for n in stack]
            _step(op, arg, stack, memo, found, path, budget)
    except (ValueError, IndexError, KeyError) as e:
        raise BadFileError(path, f"corrupt pickle ({e.__class__.__name__}: {str(e)[:120]})") from None
    if not ops:
        raise BadFileError(path, "not a pickle: empty stream")
    raise BadFileError(path, "corrupt pickle (no STOP opcode)")


def _step(op, arg, stack: list, memo: dict, found: list[str], path: Path, budget: list[int]) -> None:
    name = op.name
    if name in _MEMO_PUT or name == "MEMOIZE":
        if not stack or stack[-1] is _MARK:
            raise ValueError("memo store of an empty stack")
        memo[arg if name != "MEMOIZE" else len(memo)] = stack[-1]
        if len(memo) > MAX_MEMO:
            raise BadFileError(path, f"pickle memo of more than {MAX_MEMO} entries: refused")
        return
    if name in _MEMO_GET:
        stack.append(memo[arg])
        return
    if name == "MARK":
        stack.append(_MARK)
        return
    if name == "DUP":
        stack.append(stack[-1])
        return
    items, container = _pop(op, stack)
    _record_global(name, arg, items, found)
    _check_hashed(name, items, path)
    if name in _MUTATORS:
        if not isinstance(container, _Node):
            raise ValueError(f"{name} on a MARK")
        node = container
        _grow(node, items, path, budget)
    elif op.stack_after:
        node = _Node(value=arg if isinstance(arg, (str, int)) and not items else None)
        if items or container is not None:
            _grow(node, items + ([container] if container is not None else []), path, budget)
    else:
        return
    stack.append(node)


def _pop(op, stack: list) -> tuple[list, object]:
    """Pop the opcode's operands: (the items, the container a mutator changes in place, else None)."""
    before = op.stack_before
    if pickletools.markobject in before:
        at = len(stack) - 1
        while at >= 0 and stack[at] is not _MARK:
            at -= 1
        if at < 0:
            raise ValueError(f"{op.name} without a MARK")
        items = stack[at + 1:]
        del stack[at:]
        pre = before.index(pickletools.markobject)
    else:
        pre = len(before)
        if len(stack) < pre:
            raise ValueError(f"{op.name} on a stack of {len(stack)}")
        items = stack[len(stack) - pre:] if pre else []
        del stack[len(stack) - pre:]
        pre = 0 if op.name not in _MUTATORS else 1
        if pre:
            return items[1:], items[0]
        return items, None
    if pre:
        if len(stack) < pre:
            raise ValueError(f"{op.name} on a stack of {len(stack)}")
        held = stack[len(stack) - pre:]
        del stack[len(stack) - pre:]
        if op.name in _MUTATORS:
            return items, held[0]
        items = held + items
    return items, None


def _grow(node: _Node, children: list, path: Path, budget: list[int]) -> None:
    """Add `children` to `node`. A container filled after it was nested (the pickler never does this, a crafted
    pickle can: an empty list memoized, appended, then filled with the next level) passes its growth on to every
    node that holds it, so depth and size stay true; that work is bounded by `budget`."""
    depth, size = node.depth, node.size
    for child in children:
        if child is _MARK or not isinstance(child, _Node):
            raise ValueError("MARK used as an object")
        node.depth = max(node.depth, child.depth + 1)
        node.size = min(node.size + child.size, MAX_NODES + 1)
        if child.parents is None:
            child.parents = []
        child.parents.append(node)
    _check_bounds(node, path)
    if node.parents and (node.depth > depth or node.size > size):
        _propagate(node, node.size - size, path, budget)


def _propagate(start: _Node, delta: int, path: Path, budget: list[int]) -> None:
    work = [(start, delta)]
    while work:
        node, delta = work.pop()
        for holder in node.parents:
            budget[0] -= 1
            if budget[0] < 0:
                raise BadFileError(path, "pickle keeps growing containers after nesting them: refused "
                                         "(too much work to bound)")
            deeper = node.depth + 1 > holder.depth
            holder.depth = max(holder.depth, node.depth + 1)
            holder.size = min(holder.size + delta, MAX_NODES + 1)
            _check_bounds(holder, path)
            if holder.parents and (deeper or delta):
                work.append((holder, delta))


def _check_bounds(node: _Node, path: Path) -> None:
    if node.depth > MAX_DEPTH:
        raise BadFileError(path, f"pickle nests deeper than {MAX_DEPTH} levels: refused (would crash the loader)")
    if node.size > MAX_NODES:
        raise BadFileError(path, f"pickle builds an object graph of more than {MAX_NODES} nodes through shared "
                                 "references: refused (exponential work to load)")


def _check_hashed(name: str, items: list, path: Path) -> None:
    if name in _HASHED_ALL:
        hashed = items
    elif name in _HASHED_KEYS:
        hashed = items[0::2]
    else:
        return
    for key in hashed:
        if isinstance(key, _Node) and key.size > MAX_KEY_NODES:
            raise BadFileError(path, f"pickle uses an object of {key.size} nodes as a dict key or set member: "
                                     "refused (its hash could take forever)")


def _record_global(name: str, arg, items: list, found: list[str]) -> None:
    if name in ("GLOBAL", "INST"):
        module, _, attr = str(arg).partition(" ")
        found.append(f"{module}.{attr}")
    elif name == "STACK_GLOBAL":
        strings = [n.value for n in items if isinstance(n, _Node) and isinstance(n.value, str)]
        found.append(".".join(strings) if len(strings) == 2 and len(items) == 2 else "<unresolved STACK_GLOBAL>")
    elif name in ("EXT1", "EXT2", "EXT4"):
        found.append(f"<copyreg extension {arg}>")
