"""Model parts. Importing this package registers every part module in it by name:
modules named transforms*, featurizers* and heads* are discovered, so a new part is one file."""

import importlib
import pkgutil

for _info in pkgutil.iter_modules(__path__):
    if _info.name.startswith(("transforms", "featurizers", "heads")):
        importlib.import_module(f"{__name__}.{_info.name}")
