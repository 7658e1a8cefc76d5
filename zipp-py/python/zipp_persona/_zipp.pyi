# Type stubs of the native module (zipp-py/src); checked against it in CI with
# `python -m mypy.stubtest zipp_persona._zipp`.
import os
import pathlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Literal, TypedDict, final

import numpy as np
import numpy.typing as npt
from typing_extensions import NotRequired, Self, disjoint_base

__all__ = [
    "__version__",
    "PROVISION_HINT",
    "default_models_dir",
    "num_threads",
    "_before_fork",
    "_after_fork_in_parent",
    "_after_fork_in_child",
    "_active_calls",
    "_error_kinds",
    "Models",
    "Persona",
    "PersonaReader",
    "read_jsonl",
    "iter_jsonl",
    "write_jsonl",
    "Personalizer",
    "Identity",
    "PersonaOnly",
    "Brag",
    "Vprag",
    "Combined",
    "_bench_native",
    "Personalization",
    "Evidence",
    "EvidencePost",
    "EvidenceElement",
    "EvidenceCategory",
    "VpttScore",
    "PersonaScorer",
    "PersonaSource",
    "PersonaStream",
    "Evaluation",
    "Report",
    "mean",
    "cohens_d",
    "binomial_test",
    "wilson_interval",
    "average_ranks",
    "spearman",
    "SyntheticBench",
    "MovieLens",
    "LanguageModel",
    "TextStream",
    "Extractor",
    "Verbalizer",
    "ImageModel",
    "GeneratedImages",
    "clip_score",
    "personalization_clip_score",
    "cmmd",
    "rake",
    "ClipModel",
    "ImageEvaluation",
    "ImageReport",
    "MiningResult",
    "mine_personas",
    "build_graph",
]

__version__: Final[str]
PROVISION_HINT: Final[str]

_Path = str | os.PathLike[str]

def default_models_dir() -> pathlib.Path: ...
def num_threads() -> int: ...
def _before_fork() -> None: ...
def _after_fork_in_parent() -> None: ...
def _after_fork_in_child() -> None: ...
def _active_calls() -> int: ...
def _error_kinds() -> list[tuple[str, int, str]]: ...
def _bench_native(personalizer: Personalizer, persona: Persona, prompt: str, n: int) -> list[int]: ...

@final
class Models:
    def __new__(
        cls,
        root: _Path | None = None,
        *,
        max_tokens: int | None = None,
        batch_size: int | None = None,
        force_candle: bool | None = None,
    ) -> Self: ...
    @property
    def root(self) -> pathlib.Path: ...
    @property
    def loaded(self) -> dict[str, bool]: ...
    def load(self, kind: str) -> None: ...
    def load_all(self) -> None: ...
    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...
    @property
    def dim(self) -> int: ...
    @property
    def embedder_id(self) -> str: ...
    def count_tokens(self, text: str) -> int: ...
    @property
    def context_length(self) -> int: ...

class _PostDict(TypedDict):
    id: NotRequired[str | None]
    caption: str
    elements: NotRequired[dict[str, list[str]]]

@final
class Persona:
    def __new__(
        cls,
        id: str,
        *,
        summary: str | None = None,
        demographics: Mapping[str, str] | None = None,
        interests: Sequence[str] | None = None,
        traits: Sequence[str] | None = None,
        preferences: Mapping[str, Sequence[str]] | None = None,
        memory: Sequence[Mapping[str, Any]] | None = None,
        examples: Sequence[str] | None = None,
    ) -> Self: ...
    @staticmethod
    def from_dict(d: dict[str, Any]) -> Persona: ...
    @staticmethod
    def from_json(text: str) -> Persona: ...
    @staticmethod
    def load(path: _Path) -> Persona: ...
    def save(self, path: _Path) -> None: ...
    def to_json(self, pretty: bool = False) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...
    def replace(self, **fields: Any) -> Persona: ...
    def add_post(
        self, caption: str, elements: Mapping[str, Sequence[str]] | None = None, id: str | None = None
    ) -> Persona: ...
    def index(self, models: Models) -> None: ...
    @property
    def schema_version(self) -> int: ...
    @property
    def id(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def demographics(self) -> dict[str, str]: ...
    @property
    def interests(self) -> list[str]: ...
    @property
    def traits(self) -> list[str]: ...
    @property
    def preferences(self) -> dict[str, list[str]]: ...
    @property
    def memory(self) -> list[_PostDict]: ...
    @property
    def examples(self) -> list[str]: ...
    def persona_text(self) -> str: ...
    def categories(self) -> list[str]: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> tuple[Any, tuple[str]]: ...

@final
class PersonaReader:
    def __iter__(self) -> Self: ...
    def __next__(self) -> Persona: ...

def read_jsonl(path: _Path) -> list[Persona]: ...
def iter_jsonl(path: _Path) -> PersonaReader: ...
def write_jsonl(path: _Path, personas: Iterable[Persona]) -> None: ...

class _Request(TypedDict):
    prompt: str
    task: NotRequired[Literal["generate", "edit"]]
    seed: NotRequired[int | None]
    token_budget: NotRequired[int | None]

# A native base with its own instance layout: a class cannot derive from it and another such base.
@disjoint_base
class Personalizer:
    @staticmethod
    def from_spec(models: Models, spec: Mapping[str, Any] | str) -> Personalizer: ...
    @property
    def name(self) -> str: ...
    @property
    def spec(self) -> dict[str, Any]: ...
    def personalize(
        self,
        persona: Persona,
        prompt: str,
        *,
        task: Literal["generate", "edit"] | str = "generate",
        seed: int | None = None,
        token_budget: int | None = None,
    ) -> Personalization: ...
    def personalize_batch(
        self, persona: Persona, prompts: Sequence[str | _Request]
    ) -> list[Personalization]: ...

@final
class Identity(Personalizer):
    def __new__(cls) -> Self: ...

@final
class PersonaOnly(Personalizer):
    def __new__(cls, models: Models, *, token_budget: int | None = None) -> Self: ...

@final
class Brag(Personalizer):
    def __new__(cls, models: Models, *, k: int | None = None, token_budget: int | None = None) -> Self: ...

@final
class Vprag(Personalizer):
    def __new__(
        cls,
        models: Models,
        *,
        temperature: float | None = None,
        default_budget: int | None = None,
        budgets: Mapping[str, int] | None = None,
        token_budget: int | None = None,
    ) -> Self: ...

@final
class Combined(Personalizer):
    def __new__(
        cls,
        models: Models,
        *,
        brag_k: int | None = None,
        temperature: float | None = None,
        default_budget: int | None = None,
        budgets: Mapping[str, int] | None = None,
        token_budget: int | None = None,
    ) -> Self: ...

@final
class Personalization:
    @property
    def method(self) -> str: ...
    @property
    def prompt(self) -> str: ...
    @property
    def negative_prompt(self) -> str | None: ...
    @property
    def steering(self) -> dict[str, Any] | None: ...
    @property
    def evidence(self) -> Evidence: ...
    def explain(self) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...
    def to_json(self, pretty: bool = False) -> str: ...
    def __eq__(self, value: object, /) -> bool: ...

@final
class Evidence:
    @property
    def posts(self) -> list[EvidencePost]: ...
    @property
    def elements(self) -> list[EvidenceElement]: ...
    @property
    def categories(self) -> list[EvidenceCategory]: ...
    @property
    def entropy(self) -> float | None: ...
    @property
    def n_eff(self) -> float | None: ...
    @property
    def k(self) -> int | None: ...
    @property
    def total_budget(self) -> int | None: ...
    @property
    def content_budget(self) -> int: ...
    @property
    def tokens(self) -> int: ...
    @property
    def duplicates_dropped(self) -> int: ...
    @property
    def dropped_by_budget(self) -> int: ...
    @property
    def notes(self) -> list[str]: ...
    def to_dict(self) -> dict[str, Any]: ...

@final
class EvidencePost:
    @property
    def index(self) -> int: ...
    @property
    def id(self) -> str | None: ...
    @property
    def caption(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def weight(self) -> float | None: ...
    @property
    def caption_used(self) -> bool: ...
    def __eq__(self, value: object, /) -> bool: ...

@final
class EvidenceElement:
    @property
    def category(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def post(self) -> int: ...
    @property
    def score(self) -> float: ...
    @property
    def used(self) -> bool: ...
    def __eq__(self, value: object, /) -> bool: ...

@final
class EvidenceCategory:
    @property
    def name(self) -> str: ...
    @property
    def priority(self) -> float: ...
    @property
    def budget(self) -> int: ...
    @property
    def available(self) -> int: ...
    @property
    def allocated(self) -> int: ...
    def __eq__(self, value: object, /) -> bool: ...

# ---- evaluation (SPEC §4, §9) ----

@final
class VpttScore:
    @property
    def pa(self) -> float: ...
    @property
    def gs(self) -> float: ...
    @property
    def cp(self) -> float: ...
    @property
    def cp_soft(self) -> float: ...
    @property
    def nv(self) -> float: ...
    @property
    def nv_soft(self) -> float | None: ...
    @property
    def vptt(self) -> float: ...
    @property
    def vptt_c(self) -> float: ...
    def to_dict(self) -> dict[str, float | None]: ...
    def __eq__(self, value: object, /) -> bool: ...

@final
class PersonaScorer:
    def __new__(cls, models: Models, persona: Persona, options: Mapping[str, Any] | str | None = None) -> Self: ...
    def score(self, prompts: Sequence[str]) -> list[VpttScore]: ...
    def score_one(self, prompt: str) -> VpttScore: ...
    @property
    def persona_id(self) -> str: ...
    @property
    def rank(self) -> int: ...
    @property
    def clusters(self) -> int: ...
    @property
    def options(self) -> dict[str, Any]: ...

class _Sample(TypedDict):
    persona: str
    query: str
    method: str
    prompt: str
    pa: float
    gs: float
    cp: float
    cp_soft: float
    nv: float
    nv_soft: float | None
    vptt: float
    vptt_c: float

class _Query(TypedDict):
    name: str
    task: Literal["generate", "edit"]
    prompt: str

@final
class Evaluation:
    def __new__(cls, models: Models, config: Mapping[str, Any] | str | None = None) -> Self: ...
    def add_persona(self, persona: Persona) -> list[_Sample]: ...
    def add_personas(self, personas: Iterable[Persona]) -> int: ...
    @property
    def config(self) -> dict[str, Any]: ...
    @property
    def personas(self) -> int: ...
    @property
    def methods(self) -> list[str]: ...
    @property
    def queries(self) -> list[_Query]: ...
    def report(self) -> Report: ...

@final
class Report:
    @staticmethod
    def from_json(text: str) -> Report: ...
    def table(self) -> str: ...
    def to_json(self, pretty: bool = False) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...
    @property
    def personas(self) -> int: ...
    @property
    def methods(self) -> list[str]: ...
    @property
    def novelty(self) -> Literal["zero_without_memory", "measured"]: ...
    @property
    def baseline(self) -> str | None: ...
    @property
    def tables(self) -> list[dict[str, Any]]: ...
    @property
    def timings(self) -> dict[str, float]: ...
    def __eq__(self, value: object, /) -> bool: ...

def mean(xs: Sequence[float]) -> float: ...
def cohens_d(a: Sequence[float], b: Sequence[float]) -> float | None: ...
def binomial_test(k: int, n: int, p: float = 0.5) -> float: ...
def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]: ...
def average_ranks(xs: Sequence[float]) -> list[float]: ...
def spearman(x: Sequence[float], y: Sequence[float]) -> float: ...

# ---- persona benches ----

@final
class SyntheticBench:
    def __new__(
        cls,
        seed: int | None = None,
        personas: int | None = None,
        posts_per_persona: int | None = None,
        vocabulary_dir: _Path | None = None,
        *,
        options: Mapping[str, Any] | None = None,
    ) -> Self: ...
    @property
    def options(self) -> dict[str, Any]: ...
    @property
    def seed(self) -> int: ...
    def __len__(self) -> int: ...
    def __getitem__(self, index: int, /) -> Persona: ...
    def __iter__(self) -> PersonaStream: ...
    def source(self) -> PersonaSource: ...

@final
class MovieLens:
    @staticmethod
    def load(dir: _Path | None = None) -> MovieLens: ...
    @property
    def users(self) -> int: ...
    @property
    def movies(self) -> int: ...
    @property
    def ratings(self) -> int: ...
    def user_id(self, index: int) -> int | None: ...
    def persona(self, index: int, max_posts: int | None = None, min_rating: int | None = None) -> Persona: ...
    def source(self, max_posts: int | None = None, min_rating: int | None = None) -> PersonaSource: ...

@final
class PersonaSource:
    @staticmethod
    def jsonl(path: _Path) -> PersonaSource: ...
    @property
    def len_hint(self) -> int | None: ...
    def __iter__(self) -> PersonaStream: ...

@final
class PersonaStream:
    def __iter__(self) -> Self: ...
    def __next__(self) -> Persona: ...
    def __length_hint__(self) -> int: ...

class _Message(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str

class _Sampling(TypedDict, total=False):
    temperature: float
    top_k: int | None
    top_p: float | None
    repeat_penalty: float
    seed: int
    max_tokens: int
    stop: list[str]

class _Generation(TypedDict):
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish: Literal["end_of_turn", "stop_sequence", "max_tokens", "cancelled"]

@final
class LanguageModel:
    def __new__(cls, spec: str | Mapping[str, Any] | None = None, *, models: Models | None = None) -> Self: ...
    @property
    def id(self) -> str: ...
    def generate(
        self,
        messages: str | Sequence[_Message],
        sampling: _Sampling | None = None,
        *,
        on_text: Callable[[str], object] | None = None,
    ) -> _Generation: ...
    def stream(self, messages: str | Sequence[_Message], sampling: _Sampling | None = None) -> TextStream: ...

@final
class TextStream:
    def __iter__(self) -> Self: ...
    def __next__(self) -> str: ...
    def cancel(self) -> None: ...
    @property
    def result(self) -> _Generation | None: ...

@final
class Extractor:
    def __new__(cls, spec: str | Mapping[str, Any] | None = None, *, models: Models | None = None) -> Self: ...
    def extract(self, comments: Sequence[str]) -> dict[str, Any]: ...

@final
class Verbalizer:
    def __new__(cls, spec: str | Mapping[str, Any] | None = None, *, models: Models | None = None) -> Self: ...
    def verbalize(self, evidence: str | Mapping[str, Any]) -> tuple[Persona, dict[str, Any]]: ...

_UInt8Image = npt.NDArray[np.uint8]

class _Steering(TypedDict):
    liked: list[str]
    disliked: list[str]
    liked_strength: float
    disliked_strength: float

@final
class ImageModel:
    def __new__(cls, spec: str | os.PathLike[str] | Mapping[str, Any]) -> Self: ...
    @property
    def id(self) -> str: ...
    def generate(
        self,
        prompt: str | Personalization | None = None,
        *,
        negative_prompt: str | None = None,
        steering: _Steering | Mapping[str, Any] | None = None,
        disliked_as_negative: bool = False,
        width: int | None = None,
        height: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        scheduler: Literal["ddim", "euler", "euler_a", "unipc"] | None = None,
        seed: int = 0,
        batch: int = 1,
        first_index: int = 0,
        init_image: _UInt8Image | None = None,
        strength: float | None = None,
        conditioning: Mapping[str, Any] | None = None,
        on_step: Callable[[int, int, float, float], object] | None = None,
    ) -> GeneratedImages: ...
    def encode(
        self,
        prompt: str | Personalization | None = None,
        *,
        negative_prompt: str | None = None,
        steering: _Steering | Mapping[str, Any] | None = None,
        disliked_as_negative: bool = False,
        seed: int = 0,
    ) -> dict[str, Any]: ...

@final
class GeneratedImages:
    @property
    def images(self) -> list[_UInt8Image]: ...
    @property
    def info(self) -> dict[str, Any]: ...
    def __len__(self) -> int: ...
    def __getitem__(self, key: int, /) -> _UInt8Image: ...

def clip_score(image: Sequence[float], text: Sequence[float], *, scale100: bool = False) -> float: ...
def personalization_clip_score(image: Sequence[float], references: Sequence[Sequence[float]]) -> float: ...
def cmmd(x: Sequence[Sequence[float]], y: Sequence[Sequence[float]]) -> float: ...
def rake(
    counts: Sequence[float],
    dims: Sequence[int],
    targets: Sequence[Sequence[float]],
    values: Sequence[float] | None = None,
) -> dict[str, Any]: ...

# ---- CLIP and the image columns of an evaluation ----

# A list of H×W×3 uint8 arrays, or one (n, H, W, 3) uint8 array.
_Images = Sequence[_UInt8Image] | _UInt8Image

@final
class ClipModel:
    def __new__(cls, spec: str | os.PathLike[str] | Mapping[str, Any]) -> Self: ...
    @property
    def dim(self) -> int: ...
    @property
    def path(self) -> pathlib.Path: ...
    def image_embeddings(self, images: _Images) -> npt.NDArray[np.float32]: ...
    def text_embeddings(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...
    def clip_scores(self, images: _Images, prompt: str, *, scale100: bool = False) -> list[float]: ...
    def personalization_clip_scores(self, images: _Images, references: _Images) -> list[float]: ...
    def cmmd(self, x: _Images, y: _Images) -> float: ...

class _ImageSample(TypedDict):
    persona: str
    query: str
    method: str
    images: int
    clip_score: float
    clip_score_100: float
    personalization_clip_score: float | None

@final
class ImageEvaluation:
    def __new__(
        cls,
        clip: ClipModel,
        config: Mapping[str, Any] | str | None = None,
        *,
        options: Mapping[str, Any] | str | None = None,
    ) -> Self: ...
    def add_persona(
        self,
        persona: str | Persona,
        images: Mapping[str, Mapping[str, _Images]],
        references: _Images | None = None,
    ) -> list[_ImageSample]: ...
    @property
    def config(self) -> dict[str, Any]: ...
    @property
    def options(self) -> dict[str, Any]: ...
    @property
    def personas(self) -> int: ...
    @property
    def methods(self) -> list[str]: ...
    @property
    def queries(self) -> list[_Query]: ...
    def report(self) -> ImageReport: ...

@final
class ImageReport:
    @staticmethod
    def from_json(text: str) -> ImageReport: ...
    def table(self) -> str: ...
    def table_beside(self, report: Report) -> str: ...
    def to_json(self, pretty: bool = False) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...
    @property
    def personas(self) -> int: ...
    @property
    def personas_with_references(self) -> int: ...
    @property
    def methods(self) -> list[str]: ...
    @property
    def tables(self) -> list[dict[str, Any]]: ...
    def __eq__(self, value: object, /) -> bool: ...

# ---- persona mining from an activity graph ----

class _MiningError(TypedDict):
    user: str
    kind: str
    message: str

class _LinkScores(TypedDict):
    auc: float
    hit10: float
    edges: int

class _MiningMetrics(TypedDict):
    test: _LinkScores | None
    trained: bool
    epochs: int
    best_epoch: int
    seconds_per_epoch: float | None
    seconds: float

class _EpochRow(TypedDict):
    epoch: int
    loss: float
    link_loss: float
    align_loss: NotRequired[float]
    validation: NotRequired[_LinkScores]
    seconds: float

class _GraphSummary(TypedDict):
    users: int
    communities: int
    edges: int
    train_edges: int
    validation_edges: int
    test_edges: int

@final
class MiningResult:
    @property
    def personas(self) -> list[Persona]: ...
    @property
    def evidence(self) -> list[dict[str, Any]]: ...
    @property
    def verbalizations(self) -> list[dict[str, Any]]: ...
    @property
    def errors(self) -> list[_MiningError]: ...
    @property
    def metrics(self) -> _MiningMetrics: ...
    @property
    def history(self) -> list[_EpochRow]: ...
    @property
    def graph(self) -> _GraphSummary: ...
    def to_json(self) -> str: ...
    def to_jsonl(self, path: _Path) -> None: ...
    def __len__(self) -> int: ...

def mine_personas(
    spec: str | Mapping[str, Any],
    *,
    models: Models | None = None,
    on_progress: Callable[[str, int, int, float | None, float | None], object] | None = None,
) -> MiningResult: ...

class _BuildLoad(TypedDict):
    rows_read: int
    rows_skipped: int
    skipped: list[str]
    users: int
    communities: int
    edges: int
    snippets: int
    seconds: float

class _GraphBuildReport(TypedDict):
    out: str
    load: _BuildLoad
    ranges: int
    largest_range_bytes: int
    levels: int
    scratch_bytes: int

def build_graph(
    spec: str | Mapping[str, Any],
    *,
    on_progress: Callable[[int, int], object] | None = None,
) -> _GraphBuildReport: ...
