"""User strategies: Python files in the config's strategies folder, and installed packages'
``pairpilot.strategies`` entry points, added to the built-ins (docs/strategies.md).

Loading never stops at a bad strategy: a file that fails to import, defines no strategy, or
takes a name already taken is a ``LoadProblem`` (file and line where there is one) and the rest
load. Only a strategies folder the config names explicitly and that does not exist is an error.
Two user strategies of one name are both refused, so which one trades never depends on the
order files happen to be read in; a user strategy named like a built-in is refused.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import re
import sys
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType

from bot.app.module_changes import ChangesModules, unchanged_modules
from bot.core.errors import ConfigError
from bot.research.strategy_source import ENTRY_POINT_GROUP, pin, record
from strategies import BUILT_INS, Strategy, StrategyConfigError
from strategies.base import ParamSpec, redefined_finals
from strategies.registry import Origin, StrategyRegistry

DEFAULT_FOLDER = "user_strategies"  # beside the config file (not "strategies": the built-ins'
# package sits beside config.example.toml in a checkout)
MODULE_PREFIX = "pairpilot_user_strategies"  # user files import as pairpilot_user_strategies.<stem>
NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True, slots=True)
class LoadProblem:
    """A strategy that was not loaded: where (file:line, or the entry point) and why."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True, slots=True)
class LoadedStrategies:
    registry: StrategyRegistry
    problems: tuple[LoadProblem, ...]
    folder: Path | None  # None: no folder (the default one is absent)


def load_strategies(folder: Path | None, *, explicit: bool) -> LoadedStrategies:
    """The built-ins, the entry points' strategies and ``folder``'s. ``explicit``: the config
    named the folder, so its absence is a ConfigError; the default folder may be absent."""
    present = folder is not None and folder.is_dir()
    if folder is not None and explicit and not present:
        why = "is not a folder" if folder.exists() else "does not exist"
        raise ConfigError(f"strategies_dir {folder} {why}")
    for cls in BUILT_INS.values():  # their hash too is of their bytes when loaded
        pin(cls)
    found: list[tuple[type[Strategy], Origin]] = []
    problems: list[LoadProblem] = []
    _from_entry_points(entry_points(group=ENTRY_POINT_GROUP), found, problems)
    if folder is not None and present:
        for path in strategy_files(folder):
            _from_file(path, found, problems)
    return _registry(found, problems, folder if present else None)


def registry_of(folder: Path | None) -> StrategyRegistry:
    """What ``load_strategies`` finds in ``folder`` and the entry points, in another process
    (the registry's recipe: pickled by reference, so it runs this process's code there)."""
    return load_strategies(folder, explicit=False).registry


def strategy_files(folder: Path) -> list[Path]:
    """The strategy files of ``folder``, in name order; ``_helpers.py`` and the like are not."""
    return sorted(path for path in folder.glob("*.py") if not path.name.startswith("_"))


def _registry(
    found: list[tuple[type[Strategy], Origin]], problems: list[LoadProblem], folder: Path | None
) -> LoadedStrategies:
    places: dict[str, list[Origin]] = {}
    for cls, origin in found:
        places.setdefault(cls.name, []).append(origin)
    registry = BUILT_INS
    for cls, origin in found:
        taken = [str(registry.origin(cls.name))] if cls.name in registry else []
        others = [str(other) for other in places[cls.name] if other != origin]
        if taken or others:
            problems.append(
                LoadProblem(
                    origin.where,
                    f"strategy name {cls.name!r} is taken twice: by {origin} and by "
                    f"{' and '.join(taken + others)}; rename one (this one is not loaded)",
                )
            )
            continue
        registry = registry.adding(cls, origin)
    if len(registry) > len(BUILT_INS):
        registry = registry.with_recipe(functools.partial(registry_of, folder))
    return LoadedStrategies(registry, tuple(problems), folder)


def _from_file(
    path: Path, found: list[tuple[type[Strategy], Origin]], problems: list[LoadProblem]
) -> None:
    name = f"{MODULE_PREFIX}.{path.stem}"
    try:
        module = _import_file(path, name)
    except ChangesModules as error:  # what it changed is undone (bot/app/module_changes.py)
        problems.append(LoadProblem(str(path), str(error)))
        return
    except (Exception, SystemExit) as error:  # a user file may raise anything at import
        problems.append(LoadProblem(_failing_line(error, path), _last_line(error)))
        return
    claiming = _claiming(module, path)
    for cls in claiming:
        problems.append(LoadProblem(str(path), _claims(cls)))
    classes = _strategy_classes(module)
    if not classes and not claiming:
        problems.append(
            LoadProblem(
                str(path),
                "defines no strategy: expected a class deriving from strategies.base.Strategy "
                "with a name, a description, param_specs, warmup and compute_signals",
            )
        )
    for cls in classes:
        _accept(cls, Origin("file", str(path)), str(path), found, problems)


def _import_file(path: Path, name: str) -> ModuleType:
    """``path`` as the module ``name``, compiled from its bytes read once here: never from a
    cached .pyc, which Python trusts while the file's mtime (in whole seconds) and size match,
    so an edit within a second keeping the size would /reload the old code under the new
    file's hash. The source hash keeps these bytes, and the modules newly imported with them
    (bot/research/strategy_source.py). A file that fails leaves what ``name`` was (a previous
    load's module) as is."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    source = path.read_bytes()
    before = set(sys.modules)
    previous = sys.modules.get(name)
    sys.modules[name] = module  # its classes' __module__ must name it (the source hash)
    try:
        with unchanged_modules():
            exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102  (user code)
    except BaseException:
        if previous is None:
            del sys.modules[name]
        else:
            sys.modules[name] = previous
        raise
    record(module, source, _new_modules(before))
    return module


def _new_modules(before: set[str]) -> list[ModuleType]:
    return [module for name, module in list(sys.modules.items()) if name not in before]


def _from_entry_points(
    points: Iterable[EntryPoint],
    found: list[tuple[type[Strategy], Origin]],
    problems: list[LoadProblem],
) -> None:
    for point in sorted(points, key=lambda p: (p.name, p.value)):
        dist = point.dist
        owner = f" (distribution {dist.name} {dist.version})" if dist is not None else ""
        where = f"{point.name} = {point.value}{owner}"
        before = set(sys.modules)
        try:
            with unchanged_modules():
                loaded = point.load()
        except ChangesModules as error:
            problems.append(LoadProblem(f"entry point {where}", str(error)))
            continue
        except (Exception, SystemExit) as error:  # an installed package may raise anything
            problems.append(LoadProblem(f"entry point {where}", _with_line(error)))
            continue
        module = sys.modules.get(point.module)
        if module is not None:  # its bytes now, right after its import, and what it imported
            record(module, None, _new_modules(before))
        if not (isinstance(loaded, type) and issubclass(loaded, Strategy)):
            problems.append(
                LoadProblem(
                    f"entry point {where}", "does not name a strategies.base.Strategy class"
                )
            )
            continue
        if loaded.__dict__.get("name") != point.name:
            problems.append(
                LoadProblem(
                    f"entry point {where}",
                    f"names strategy {getattr(loaded, 'name', None)!r}; the entry point's name "
                    "must be the strategy's name",
                )
            )
            continue
        _accept(loaded, Origin("entry point", where), f"entry point {where}", found, problems)


def _strategy_classes(module: ModuleType) -> list[type[Strategy]]:
    """The concrete strategies ``module`` defines: not those it imports (built-ins included),
    nor its private helper bases (``_Crossover``, as strategies/ema_cross.py has one)."""
    # each class once, however many names (aliases) the module gives it
    classes = dict.fromkeys(v for v in vars(module).values() if isinstance(v, type))
    return [
        value
        for value in classes
        if issubclass(value, Strategy)
        and not inspect.isabstract(value)
        and not value.__name__.startswith("_")
        and value.__module__ == module.__name__
    ]


def _accept(
    cls: type[Strategy],
    origin: Origin,
    where: str,
    found: list[tuple[type[Strategy], Origin]],
    problems: list[LoadProblem],
) -> None:
    """``cls`` when it is a usable strategy: a lower-case name, a description, its parameters
    declared as ParamSpecs, and defaults it accepts."""
    name = cls.__dict__.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        problems.append(
            LoadProblem(
                where,
                f"{cls.__name__}.name = {name!r}: expected a lower-case name of letters, digits "
                "and _ (at most 40), starting with a letter",
            )
        )
        return
    specs = getattr(cls, "param_specs", None)
    if not isinstance(getattr(cls, "description", None), str) or not (
        isinstance(specs, tuple) and all(isinstance(spec, ParamSpec) for spec in specs)
    ):
        problems.append(
            LoadProblem(
                where,
                f"strategy {name!r}: expected a description (text) and param_specs, a tuple of "
                "strategies.base.ParamSpec (empty when it takes none)",
            )
        )
        return
    lying = _claims_another_module(cls)
    if lying is not None:
        problems.append(LoadProblem(where, _claims(lying)))
        return
    redefined = redefined_finals(cls)
    if redefined:
        problems.append(LoadProblem(where, "; ".join(redefined)))
        return
    try:
        cls()
    except StrategyConfigError as error:
        problems.append(LoadProblem(where, f"strategy {name!r}: its defaults are refused: {error}"))
        return
    except Exception as error:  # user code may raise anything
        problems.append(LoadProblem(where, f"strategy {name!r} cannot be built: {error!r}"))
        return
    pin(cls)  # its source hash, from the bytes just loaded (bot/research/strategy_source.py)
    found.append((cls, origin))


def _claiming(module: ModuleType, path: Path) -> list[type[Strategy]]:
    """The strategy classes ``module`` defines that claim to be another module's
    (``__module__ = "strategies.base"``): their code would be hashed as that module's."""
    classes = dict.fromkeys(v for v in vars(module).values() if isinstance(v, type))
    return [
        cls
        for cls in classes
        if issubclass(cls, Strategy)
        and cls.__module__ != module.__name__
        and (_defined_in(cls, str(path)) or _claims_another_module(cls) is cls)
    ]


def _claims_another_module(cls: type[Strategy]) -> type[Strategy] | None:
    """The first class of ``cls``'s MRO above Strategy whose ``__module__`` is the interface
    or does not hold it under its name; None when each names its own module."""
    for klass in cls.__mro__[: cls.__mro__.index(Strategy)]:
        if klass.__module__ == Strategy.__module__:
            return klass
        if "<locals>" in klass.__qualname__:  # made by a function: nothing to look it up by
            continue
        there: object = sys.modules.get(klass.__module__)
        for part in klass.__qualname__.split("."):
            there = getattr(there, part, None)
        if there is not klass:
            return klass
    return None


def _defined_in(cls: type, file: str) -> bool:
    """Whether a function of ``cls``'s own was compiled from ``file``."""
    for value in vars(cls).values():
        code = getattr(inspect.unwrap(getattr(value, "fget", value)), "__code__", None)
        if code is not None and code.co_filename == file:
            return True
    return False


def _claims(cls: type) -> str:
    return (
        f"class {cls.__qualname__} claims __module__ = {cls.__module__!r}, a module that does "
        "not define it: a strategy class must keep the module it is defined in (its source "
        "hash names that module's code); not loaded"
    )


def _failing_line(error: BaseException, path: Path) -> str:
    """``path:line`` where importing the file failed: the syntax error's line, else the last
    frame of the traceback inside the file."""
    if isinstance(error, SyntaxError) and error.filename == str(path):
        return f"{path}:{error.lineno}"
    lines = [
        frame.lineno
        for frame in traceback.extract_tb(error.__traceback__)
        if Path(frame.filename) == path
    ]
    return f"{path}:{lines[-1]}" if lines else str(path)


def _last_line(error: BaseException) -> str:
    return "".join(traceback.format_exception_only(error)).strip().splitlines()[-1]


def _with_line(error: BaseException) -> str:
    """The exception's last line, and the file and line of the innermost frame."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    if isinstance(error, SyntaxError):
        where = f" ({error.filename}:{error.lineno})"
    return f"{_last_line(error)}{where}"
