"""Pretraining objectives, registered by name in ``OBJECTIVES`` (``blurbkit pretrain --objective``).

An objective is everything about *what* is learned; the loop in ``pretrain/trainer.py`` is only *how*
(data order, accumulation, optimiser, checkpoints) and never names an objective. One module per
objective, holding a subclass of :class:`~blurbkit.pretrain.objectives.base.Objective` and its
training module; one line below registers it (as ``"module:Class"``, imported on first use, so that
listing the names, e.g. for ``blurbkit pretrain --help``, does not import torch). An objective owns:

* the model: ``new_model(config)`` from scratch, ``load_model(dir)`` for continual pretraining;
* the training module around it, ``module(model)``: an ``nn.Module`` whose ``forward(**batch)``
  returns ``(loss, {name: detached part})``; every part is averaged into ``train_log.jsonl`` under
  its name (``mlm_loss``, ``nsp_loss``, ...); ``hf_models(module)`` lists the Hugging Face models
  inside (the CPU attention speed-up is applied to each);
* the data it needs: ``example_mode(packing)`` (the layout ``data.make_examples`` builds, e.g. NSP
  segment pairs), ``check_corpus(cache)`` (refuse, before training, a corpus it cannot learn from)
  and ``collator(...)`` (the batches: masked ids, MLM targets, NSP labels);
* what is saved: ``saved_model(module)``, the Hugging Face model written to OUT, and
  ``signature()``, what a checkpoint must match to be resumed by this objective.

* its options: ``configure(cfg)`` reads them from the ``PretrainConfig`` and refuses bad ones
  before any work (e.g. ELECTRA's ``generator_size``).

Registered: ``mlm`` (masked LM over packed windows or one document per sequence; ``mlm.py``),
``mlm_nsp`` (masked LM + next-sentence prediction over two-segment inputs; ``mlm_nsp.py``; what the
old ``nsp=True`` / ``--nsp`` select), ``mlm_pairs`` (masked LM alone over the same two-segment
inputs: the "MLM only" setting of the stability paper; ``mlm_pairs.py``) and ``electra``
(replaced-token detection: a small generator and the discriminator sharing one embeddings module,
``electra.py``; the discriminator is saved).
ELECTRA was added exactly this way: one module and the registry line below, plus the ``configure``
hook for its options; the loop did not change.
"""

from __future__ import annotations

import importlib

from blurbkit.errors import BlurbkitError
from blurbkit.pretrain.objectives.base import Objective
from blurbkit.registry import Registry

OBJECTIVES: Registry[str] = Registry("pretraining objective")  # name -> "module:Class"
OBJECTIVES.register("mlm")(f"{__name__}.mlm:MaskedLM")
OBJECTIVES.register("mlm_nsp")(f"{__name__}.mlm_nsp:MaskedLMWithNSP")
OBJECTIVES.register("mlm_pairs")(f"{__name__}.mlm_pairs:PairedMaskedLM")
OBJECTIVES.register("electra")(f"{__name__}.electra:Electra")

LEGACY_NSP = "mlm_nsp"  # what PretrainConfig(nsp=True) and --nsp select

__all__ = ["LEGACY_NSP", "OBJECTIVES", "Objective", "get_objective", "resolve_objective"]


def get_objective(name: str) -> Objective:
    """The registered objective `name`; an unknown name is a one-line BlurbkitError listing the known ones."""
    module, _, cls = OBJECTIVES.get(name).partition(":")
    objective = getattr(importlib.import_module(module), cls)()
    objective.name = name
    return objective


def resolve_objective(objective: str | None, nsp: bool, *, explicit: bool = False) -> str:
    """The objective a config or command line selects: `objective` (default ``mlm``), or ``mlm_nsp``
    for the legacy ``nsp`` flag. ``nsp`` combines with ``mlm_nsp`` and, unless the objective was
    given `explicit`-ly (on the command line), with the default ``mlm``; anything else is a clash."""
    name = objective or "mlm"
    OBJECTIVES.get(name)  # an unknown name fails here, before any work
    allowed = (LEGACY_NSP,) if explicit else ("mlm", LEGACY_NSP)
    if nsp and name not in allowed:
        raise BlurbkitError(f"--nsp means --objective {LEGACY_NSP}; it cannot be combined with --objective {name}")
    return LEGACY_NSP if nsp else name
