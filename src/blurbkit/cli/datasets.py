"""`blurbkit datasets`: the dataset table (measured vs published counts, notes), and
`blurbkit datasets add` to register a user's own dataset.

`add` writes ``$BLURBKIT_HOME/datasets/NAME.toml`` (default ``~/.blurbkit/datasets``) after reading
every split once to validate it. The one-file alternative is to drop such a TOML there yourself:

    # ~/.blurbkit/datasets/mygenes.toml
    task_type = "ner"
    reader = "conll"                      # conll | pico | chemprot | gad | biosses | hoc | pubmedqa | bioasq
    source = "/data/mygenes"              # folder holding the files below
    files = { train = "train.tsv", dev = "dev.tsv", test = "test.tsv" }
    entity_types = ["Gene"]               # optional for NER: inferred from the tags when empty
    in_blurb = false

It then works with prepare, finetune, evaluate and the rest like a built-in dataset.
"""

from __future__ import annotations

import argparse
import json
import re
import tomllib
from pathlib import Path
from typing import Any

from blurbkit.cli.argtypes import names_arg
from blurbkit.cli.prepare import add_read_options, read_options
from blurbkit.errors import BlurbkitError

NAME = re.compile(r"[a-z][a-z0-9_]*")
EPILOG = """\
One-file alternative: drop a TOML file in $BLURBKIT_HOME/datasets/ (default ~/.blurbkit/datasets);
its file name is the dataset name. For example ~/.blurbkit/datasets/mygenes.toml:

    task_type = "ner"
    reader = "conll"          # conll | pico | chemprot | gad | biosses | hoc | pubmedqa | bioasq
    source = "/data/mygenes"  # the folder holding the files below
    files = { train = "train.tsv", dev = "dev.tsv", test = "test.tsv" }
    entity_types = ["Gene"]   # optional: inferred from the tags when absent
    in_blurb = false

Relation sets also need labels = [...] and negative_label; classification and QA sets labels.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "datasets",
        help="list datasets with measured vs published counts; `datasets add` registers your own",
        description="Print every dataset with its task type, metric, measured/published counts per split and notes.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data", help="prepared directory or raw source folder (default: $BLURBKIT_DATA or ../shared/data)"
    )
    add_read_options(parser)
    parser.set_defaults(func=run_list)
    sub = parser.add_subparsers(dest="datasets_command", metavar="add")
    add = sub.add_parser(
        "add",
        help="register your own dataset (writes $BLURBKIT_HOME/datasets/NAME.toml)",
        description="Register your own dataset: every split is read once to validate it, entity types and "
        "labels the files imply are filled in, and the result is written as $BLURBKIT_HOME/datasets/NAME.toml.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("name", help="dataset name (lower case letters, digits, _)")
    add.add_argument("--format", required=True, help="file format = reader (conll, pico, chemprot, gad, biosses, hoc, pubmedqa, bioasq)")
    add.add_argument("--source", required=True, type=Path, help="folder holding the split files")
    add.add_argument("--task-type", help="default: the format's task type")
    for split in ("train", "dev", "test"):
        add.add_argument(f"--{split}", metavar="FILE", help=f"{split} file, relative to --source")
    add.add_argument(
        "--entity-types", type=names_arg, metavar="A,B", help="NER/PICO/relation types (default: inferred)"
    )
    add.add_argument(
        "--labels", type=names_arg, metavar="A,B", help="class labels in order (default: inferred, sorted)"
    )
    add.add_argument(
        "--negative-label", help="relation: the no-relation label (default: false/0/negative if present)"
    )
    add.add_argument("--max-length", type=int, default=256, help="max input length in tokens (default 256)")
    add.add_argument("--title", help="display name (default: NAME)")
    add.add_argument("--force", action="store_true", help="replace an existing user dataset of this name")
    add.set_defaults(func=run_add)


def run_list(args: argparse.Namespace) -> int:
    from blurbkit.data.load import default_data, load_manifest
    from blurbkit.data.prepare import format_table

    if args.data is None:
        try:
            default_data()
        except BlurbkitError:
            print(registry_table())  # no data anywhere: still show what is registered
            print("(no data folder found: pass --data DIR or set $BLURBKIT_DATA for measured counts)")
            return 0
    print(format_table(load_manifest(args.data, read_options(args))))
    return 0


def registry_table() -> str:
    from blurbkit.tasks.registry import SPLITS, all_datasets

    rows = [["dataset", "task type", "metric", *(f"{s} (published)" for s in SPLITS)]]
    for name, spec in all_datasets().items():
        rows.append([name, spec.task_type, spec.metric, *(str(spec.published.get(s, "-")) for s in SPLITS)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _toml_value(value: Any) -> str:
    # JSON strings and lists of strings are valid TOML basic strings / arrays.
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False)


def to_toml(table: dict[str, Any]) -> str:
    lines = ["# Written by `blurbkit datasets add`; edit freely (see `blurbkit datasets add --help`)."]
    lines += [f"{key} = {_toml_value(value)}" for key, value in table.items() if value not in (None, [], ())]
    return "\n".join(lines) + "\n"


def _infer(name: str, table: dict[str, Any]) -> dict[str, Any]:
    """Read every split with the user's settings; fill in entity types / labels the files imply."""
    from blurbkit.data.readers import read_split
    from blurbkit.data.readers.base import ReadOptions
    from blurbkit.tasks.registry import SPLITS, _spec_from_table

    spec = _spec_from_table(name, table, "datasets add")
    records = [record for split in SPLITS for record in read_split(spec, spec.source, split, ReadOptions()).records]
    for field, found in spec.task.infer_fields(records).items():
        if found and not table.get(field):
            table[field] = sorted(found)
    return table


def format_task_type(reader: str):
    """The task type whose data a `--format` reader holds (each task type lists its formats)."""
    from blurbkit.tasks.types import TASK_TYPES

    for name in TASK_TYPES.names():
        if reader in TASK_TYPES.get(name).file_formats:
            return TASK_TYPES.get(name)
    known = sorted(f for name in TASK_TYPES.names() for f in TASK_TYPES.get(name).file_formats)
    raise BlurbkitError(f"unknown format {reader!r} (one of {', '.join(known)})")


def run_add(args: argparse.Namespace) -> int:
    from blurbkit.fileio import atomic_write
    from blurbkit.tasks.registry import _spec_from_table, builtin_datasets, user_registry_dir

    name = args.name
    if not NAME.fullmatch(name):
        raise BlurbkitError(
            f"dataset name {name!r}: use lower case letters, digits and _ (starting with a letter)"
        )
    if name in builtin_datasets():
        raise BlurbkitError(f"{name!r} is a built-in dataset; choose another name")
    path = user_registry_dir() / f"{name}.toml"
    if path.exists() and not args.force:
        raise BlurbkitError("a user dataset of this name exists; pass --force to replace it", path=path)
    task = format_task_type(args.format)
    asked = args.task_type
    if asked and asked != task.name:
        raise BlurbkitError(f"format {args.format!r} holds {task.name} data, not {asked}")
    try:
        source = args.source.expanduser().resolve()
    except RuntimeError:  # '~nosuchuser/x': no such home directory
        raise BlurbkitError(f"--source {args.source}: no such user's home directory") from None
    if not source.is_dir():
        raise BlurbkitError("source folder not found", path=args.source)
    suffix = {"pico": "txt", "hoc": "json", "pubmedqa": "json"}.get(args.format, "tsv")
    files = {split: getattr(args, split) or f"{split}.{suffix}" for split in ("train", "dev", "test")}
    for split, file in files.items():
        if not (source / file).is_file():
            raise BlurbkitError(f"{split} file not found (pass --{split} FILE)", path=source / file)
    table: dict[str, Any] = {
        "title": args.title or name,
        "task_type": task.name,
        "reader": args.format,
        "source": str(source),
        "files": files,
        "entity_types": args.entity_types or [],
        "labels": args.labels or [],
        "unit": task.unit,
        "max_length": args.max_length,
        "negative_label": args.negative_label,
        "in_blurb": False,
    }
    task.complete_registration(table, inferred=False)  # what must be given before the files are read
    table = _infer(name, table)
    task.complete_registration(table, inferred=True)
    text = to_toml(table)
    _spec_from_table(name, tomllib.loads(text), str(path))  # what the registry will read back
    with atomic_write(path) as handle:
        handle.write(text)
    print(f"registered {name} ({task.name}, {args.format}) -> {path}")
    print(text.rstrip())
    return 0
