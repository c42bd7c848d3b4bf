"""The fingerprint of the code a strategy class runs, taken from the bytes it was loaded from.

A stored `strategy check` and a backtest receipt are kept under ``source_hash``
(bot/research/receipts.py), which reads a class's pin from here. A class is pinned once, when
it is loaded (bot/app/strategy_loading.py pins every class it accepts; a class it did not load,
a built-in, is pinned the first time it is asked about), so the hash names the code loaded,
not the file on disk now: a file edited while the service or a check runs, or loaded again
by a /reload, leaves the class already loaded with its hash.

A class's hash covers, in this order, each module and its bytes:

1. the module of each class of its MRO down to, not including, ``strategies.base.Strategy``
   (the class identified by identity, not by its ``__module__``, which a class can claim);
2. the helpers: every module those modules import (their globals' modules, and the modules
   newly imported while a strategy file or entry point loaded), recursively, that is not of the
   standard library nor of an installed distribution pairpilot depends on (the lock pins
   those). A plain file (a module on PYTHONPATH, a user package, a distribution that provides
   ``pairpilot.strategies`` entry points, pairpilot's own modules) by its bytes; any other
   installed distribution by its name and version. In module-name order;
3. the interface, ``strategies.base``.

Without helpers this is the hash receipts took before helpers were hashed (1 then 3), so their
receipts still rerun. Files a strategy reads at import (data, models) are not covered.

Each module's bytes are the ones it was compiled from when the loader compiled it (a folder
file), else its file's bytes the first time it is seen, right after its import. Light: no
pandas at import (the chat imports the receipts at start-up).
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterable, Iterator
from functools import cache
from importlib import metadata
from pathlib import Path
from types import FunctionType, ModuleType
from weakref import WeakKeyDictionary

ENTRY_POINT_GROUP = "pairpilot.strategies"
INTERFACE = "strategies.base"
_ROOT = Path(__file__).resolve().parents[2]  # the folder holding bot/ and strategies/
_OWN = ("bot", "strategies", "storage", "handlers")  # pairpilot's packages
_SKIP, _BYTES, _DIST = "skip", "bytes", "dist"

_SOURCES: WeakKeyDictionary[ModuleType, bytes] = WeakKeyDictionary()
_IMPORTED: WeakKeyDictionary[ModuleType, tuple[ModuleType, ...]] = WeakKeyDictionary()
_PINS: WeakKeyDictionary[type, tuple[str, tuple[str, ...]]] = WeakKeyDictionary()
# a pinned class's own module's file and bytes (its module may be gone: a later load replaced it)
_LOADED: WeakKeyDictionary[type, tuple[str | None, bytes]] = WeakKeyDictionary()


def record(module: ModuleType, source: bytes | None, imported: Iterable[ModuleType]) -> None:
    """Keep ``module``'s bytes (``source``, what was compiled; None: its file's bytes now) and
    the plain files among the modules newly imported while it loaded. The first record stays."""
    if module not in _SOURCES:
        _SOURCES[module] = _file_bytes(module) if source is None else source
    if module not in _IMPORTED:
        # plain files only: pairpilot's own modules and installed distributions are reached
        # through the globals. What a distribution imports in turn is imported by the first
        # file that imports it in a process (in a sweep worker, not in the service): recorded,
        # it would make that file's hash depend on the process and the order of loading
        _IMPORTED[module] = tuple(
            m
            for m in imported
            if m is not module and _kind(m) == _BYTES and m.__name__.partition(".")[0] not in _OWN
        )


def pin(cls: type) -> str:
    """``cls``'s source hash: taken now unless pinned before; kept while ``cls`` lives."""
    return _pinned(cls)[0]


def covered(cls: type) -> tuple[str, ...]:
    """The names of the modules ``cls``'s hash covers, in hashing order (pinned with it)."""
    return _pinned(cls)[1]


def _pinned(cls: type) -> tuple[str, tuple[str, ...]]:
    pinned = _PINS.get(cls)
    if pinned is None:
        own, helpers, interface = _parts(cls)
        digest = hashlib.blake2b(digest_size=16)
        for module in (*own, *helpers):
            digest.update(module.__name__.encode())
            digest.update(_fingerprint(module))
        digest.update(interface.__name__.encode())
        digest.update(module_bytes(interface))
        names = tuple(m.__name__ for m in (*own, *helpers, interface))
        pinned = _PINS[cls] = (digest.hexdigest(), names)
        _LOADED[cls] = (getattr(own[0], "__file__", None), module_bytes(own[0]))
    return pinned


def _parts(cls: type) -> tuple[list[ModuleType], list[ModuleType], ModuleType]:
    """The modules of ``cls``'s MRO above Strategy (one per class, as receipts always hashed),
    its helpers by name, and the interface module."""
    interface = sys.modules[INTERFACE]
    strategy = vars(interface)["Strategy"]
    if strategy not in cls.__mro__:
        raise TypeError(f"{cls!r} is not a strategies.base.Strategy")
    own = [sys.modules[klass.__module__] for klass in cls.__mro__[: cls.__mro__.index(strategy)]]
    seen = {id(interface), *map(id, own)}
    helpers: dict[str, ModuleType] = {}
    stack = list(own)
    while stack:
        for module in _imports(stack.pop()):
            if id(module) in seen:
                continue
            seen.add(id(module))
            kind = _kind(module)
            if kind == _SKIP:
                continue
            helpers[module.__name__] = module
            if kind == _BYTES:  # a distribution's name and version cover what it imports
                stack.append(module)
    return own, [helpers[name] for name in sorted(helpers)], interface


def _imports(module: ModuleType) -> Iterator[ModuleType]:
    """The modules ``module`` refers to: modules, classes and functions among its globals (by
    the module they come from), and those newly imported while it loaded."""
    yield from _IMPORTED.get(module, ())
    for value in list(vars(module).values()):
        if isinstance(value, ModuleType):
            yield value
        elif isinstance(value, type | FunctionType):
            origin = sys.modules.get(getattr(value, "__module__", None) or "")
            if origin is not None:
                yield origin


def module_bytes(module: ModuleType) -> bytes:
    """``module``'s bytes as recorded (see ``record``); recorded now when first seen."""
    if module not in _SOURCES:
        _SOURCES[module] = _file_bytes(module)
    return _SOURCES[module]


def edited_since_loaded(cls: type) -> bool:
    """The file of ``cls``'s own module holds other bytes now than those it was pinned with
    (an edit not loaded yet); False when its file is gone or it has none."""
    _pinned(cls)
    file, loaded = _LOADED[cls]
    try:
        return file is not None and Path(file).read_bytes() != loaded
    except OSError:
        return False


def _file_bytes(module: ModuleType) -> bytes:
    file = getattr(module, "__file__", None)
    return b"" if file is None else Path(file).read_bytes()


def _fingerprint(module: ModuleType) -> bytes:
    if _kind(module) == _DIST:
        dist = _distribution(module.__name__.partition(".")[0])
        assert dist is not None  # _kind said so
        return f"{dist.name}=={dist.version}".encode()
    return module_bytes(module)


def _kind(module: ModuleType) -> str:
    """How a helper module counts: not at all (standard library, built in, or a distribution
    pairpilot depends on), by its bytes, or by its distribution's name and version."""
    top = module.__name__.partition(".")[0]
    file = getattr(module, "__file__", None)
    if file is None or top in sys.stdlib_module_names:
        return _SKIP
    path = Path(file)
    if top in _OWN and path.is_relative_to(_ROOT) or not _installed(path):
        return _BYTES
    dist = _distribution(top)
    if dist is None or _normal(dist.name) in _dependencies():
        return _SKIP if dist is not None else _BYTES
    if dist.entry_points.select(group=ENTRY_POINT_GROUP):
        return _BYTES  # a package of user strategies: its code, however it was installed
    return _DIST


def _installed(path: Path) -> bool:
    return any(part in ("site-packages", "dist-packages") for part in path.parts)


@cache
def _distribution(top: str) -> metadata.Distribution | None:
    """The installed distribution providing the top-level module ``top``, if any."""
    try:
        return metadata.distribution(top)
    except metadata.PackageNotFoundError:
        names = metadata.packages_distributions().get(top, [])  # slower: read every dist
        return metadata.distribution(names[0]) if names else None


@cache
def _dependencies() -> frozenset[str]:
    """The normalised names of the distributions pairpilot depends on, transitively (no
    extras): the lock pins their versions, so their code is pairpilot's environment."""
    found: set[str] = set()
    todo = ["pairpilot"]
    while todo:
        try:
            requires = metadata.requires(todo.pop()) or []
        except metadata.PackageNotFoundError:
            continue
        for requirement in requires:
            name = re.match(r"[A-Za-z0-9._-]+", requirement)
            if name is None or "extra ==" in requirement.replace('"', "").partition(";")[2]:
                continue
            normal = _normal(name.group())
            if normal not in found:
                found.add(normal)
                todo.append(normal)
    return frozenset(found)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
