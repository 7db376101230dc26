"""What a pickled checkpoint would call while it is unpickled, found without running any of it.

Ultralytics' allow-list loader lets a pickle call any allowed class with arguments of its choosing (pickle's REDUCE):
`TorchVision('resnet18', 'DEFAULT')` downloads weights, `nn.Linear(200000, 200000)` allocates 160 GB. A model that
`torch.save` pickled never does that: its modules are restored by `__new__` and their saved attributes. This module
replays the pickle with stand-ins (no import, no call) and lists the layer classes it would call.
"""

from __future__ import annotations

import importlib
import pickle
import zipfile
from pathlib import Path

# Modules whose classes are model layers: calling one from a pickle builds it with the file's arguments.
LAYER_MODULES = ("torch.nn.", "ultralytics.nn.", "dydet.nn.", "torchvision.")


class _Global:
    """Stand-in for a global the pickle names (never imported)."""

    def __init__(self, name: str):
        self.name = name


class _Value:
    """Stand-in for whatever a call or a storage would have produced."""


class _DryUnpickler(pickle._Unpickler):
    """Pure-Python unpickler that resolves nothing and calls nothing; it records the globals called by REDUCE."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file):
        super().__init__(file)
        self.called: list[str] = []

    def find_class(self, module: str, name: str) -> _Global:
        return _Global(f"{module}.{name}")

    def persistent_load(self, pid) -> _Value:
        return _Value()

    def load_reduce(self):
        self.stack.pop()
        func = self.stack[-1]
        if isinstance(func, _Global):
            self.called.append(func.name)
        self.stack[-1] = _Value()

    def load_newobj(self):
        self.stack.pop()
        self.stack[-1] = _Value()

    def load_newobj_ex(self):
        del self.stack[-2:]
        self.stack[-1] = _Value()

    def load_build(self):
        self.stack.pop()

    def load_inst(self):
        self.readline(), self.readline()
        self.pop_mark()
        self.append(_Value())

    def load_obj(self):
        self.pop_mark()
        self.append(_Value())

    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.NEWOBJ[0]] = load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex
    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.INST[0]] = load_inst
    dispatch[pickle.OBJ[0]] = load_obj


def _is_layer(name: str) -> bool:
    if not name.startswith(LAYER_MODULES):
        return False
    module, _, attr = name.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module), attr, None)
    except Exception:  # no such module: the load itself refuses the name
        return False
    import torch

    return isinstance(obj, type) and issubclass(obj, torch.nn.Module)


def layer_calls(path: str | Path) -> list[str] | None:
    """Return the layer classes (`module.Name`) a `torch.save` archive's pickle calls with arguments.

    None when the pickle cannot be replayed (then it must not be loaded restricted either).

    Args:
        path (str | Path): The checkpoint.

    Returns:
        (list[str] | None): The names, in the order called.
    """
    try:
        with zipfile.ZipFile(path) as z:
            name = next((n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            if name is None:
                return []
            with z.open(name) as f:
                unpickler = _DryUnpickler(f)
                unpickler.load()
    except zipfile.BadZipFile:  # not an archive: torch.load reports it
        return []
    except Exception:  # a pickle this replay cannot follow
        return None
    return [n for n in unpickler.called if _is_layer(n)]
