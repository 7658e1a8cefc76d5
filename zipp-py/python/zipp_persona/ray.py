"""zipp on Ray Data: persona-scale embedding, personalization, scoring and evaluation across a
cluster (the optional extra ``pip install 'zipp-persona[ray]'``; ``import zipp_persona`` itself
never imports Ray).

>>> import ray, zipp_persona as zipp
>>> from zipp_persona import ray as zray
>>> ray.init()                                # or ray.init(address="auto") on a cluster
>>> ds = zray.read_personas("s3://bucket/personas/")   # JSONL or Parquet files, streamed
>>> out = ds.map_batches(zray.Personalize, fn_constructor_args=("vprag",),
...                      fn_constructor_kwargs={"prompts": ["a portrait in the park"]},
...                      compute=ray.data.ActorPoolStrategy(size=4), num_cpus=2, batch_size=16)
>>> out.write_parquet("s3://bucket/personalized/")    # plain columns: str, float, int, numpy
>>> result = zray.evaluate("s3://bucket/personas/", concurrency=4, num_cpus=2)
>>> print(result.report.table()); result.errors       # the same report as a local Evaluation

**Reading.** :func:`read_personas` reads JSONL (one persona per line; blank lines skipped,
``.gz``/``.zst``/… decompressed by extension) or Parquet (a string column of persona JSON,
``column="persona"``) from any filesystem Ray and pyarrow read, one block at a time: a single
huge file is never read whole. Rows: ``persona`` (the JSON as *bytes*, so that a line that is
not UTF-8 still reaches the actors), ``source`` (the file) and ``line`` (1-based line, or row
for Parquet). Read tasks reserve no CPU by default (``num_cpus=0``): Ray Data 2.60 sets no CPU
aside for a read upstream of an actor pool, so a pool holding every CPU would starve it.

**Callables** (for ``Dataset.map_batches``, as the class with ``fn_constructor_args`` /
``fn_constructor_kwargs`` and ``compute=ray.data.ActorPoolStrategy(size=n)``): :class:`Embed`,
:class:`Personalize`, :class:`Score`, :class:`EvaluateBatch`. Each loads zipp's models **once
per actor**, in ``__init__`` (``models_dir``: default ``~/.cache/zipp/models`` on every node),
and passes the input columns through, adding its own. A ``persona`` cell may be JSON text (str
or bytes), a picklable :class:`zipp_persona.Persona` or a dict. A persona that fails validation
(malformed JSON, schema, not UTF-8) or a call zipp rejects becomes an **error row**, never a
failed job (a column holds one kind of cell: Ray cannot store Persona objects and strings in
one column): ``error`` (zipp's message; ``""`` on good rows), ``error_kind`` (zipp's stable kind
name: ``parse``, ``schema``, …) and ``location`` (``path:line`` when the rows carry ``source``
and ``line``, as :func:`read_personas`' do). Numeric columns of error rows are NaN.

**Threads.** Each actor runs zipp with the CPUs Ray gave it: before its first zipp call the
callable sets ``ZIPP_NUM_THREADS`` to the actor's assigned ``CPU`` (floored, at least 1;
``threads=n`` overrides), which wins over an ``OMP_NUM_THREADS`` or ``ZIPP_NUM_THREADS``
inherited from the driver's environment. zipp fixes its pool at the first call in a process,
so the callable checks it (``.threads``; ``diagnostics=True`` adds ``zipp_pid``,
``zipp_threads`` and ``zipp_loads`` columns) and warns if the pool was built before.

**Faults.** Ray Data starts actor pools with ``max_restarts=-1`` and ``max_task_retries=-1``:
an actor that dies (killed, out of memory, node lost) is restarted — loading its models again —
and its unfinished batch is run again from its start (what the killed attempt produced is
dropped), so no row is lost or duplicated. Nothing needs passing; ``map_batches(...,
max_restarts=0)`` turns it off. The callables are deterministic, which retries rely on: a task
whose output blocks were already streamed out before it died is re-run and its first outputs
skipped, so they must come out the same (diagnostics and timing columns aside).

**Evaluation.** :func:`evaluate` maps :class:`EvaluateBatch` over the personas: per batch, a
fresh :class:`zipp_persona.Evaluation` (cheap; the models are the actor's) whose exact
aggregate (:class:`zipp_persona.EvalAggregate`, JSON) comes back as one row; the driver merges
them as they stream in and calls ``report()``. Merging is exact and order-independent, so the
report equals a local ``Evaluation`` over the same personas (``timings`` aside: they sum the
actors' times). Personas are never collected on the driver.

**Exactness.** Every callable gives what the same local zipp call gives, bit for bit:
``Personalize`` calls ``personalize`` per row (``personalize_batch(persona, prompts)`` with
``prompts=``; the ZIPP rewriter's evidence also records its ``generation_ms``, a wall time),
``Score`` calls ``PersonaScorer.score_one`` per row. ``Embed`` embeds each Ray batch in one
``Models.embed`` call; a text's vector does not depend on the batch it is in, except in a call
whose texts have 16 tokens or fewer in all, which takes a small-batch kernel (equal to ~1e-7).
"""

from __future__ import annotations

import json
import math
import os
import resource
import time
import warnings
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
    Any,
    Dict,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import numpy as np
import numpy.typing as npt

try:
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]
    import ray
    import ray.data
    from ray.data.datasource import FileBasedDatasource
except ImportError as _e:  # pragma: no cover - the extra is missing
    raise ImportError(
        "zipp_persona.ray needs Ray Data: pip install 'zipp-persona[ray]' (ray[data] and pyarrow)"
    ) from _e

from . import _zipp
from ._errors import ZippError

if TYPE_CHECKING:
    from ray.data import Dataset

__all__ = [
    "EvalResult",
    "Embed",
    "EvaluateBatch",
    "Personalize",
    "Score",
    "evaluate",
    "read_personas",
]

#: A Ray Data batch in numpy format: column name → array (strings as object arrays).
Batch = Dict[str, npt.NDArray[Any]]
_PathLike = Union[str, "os.PathLike[str]"]

_SCORE_FIELDS = ("pa", "gs", "cp", "cp_soft", "nv", "nv_soft", "vptt", "vptt_c")

# ---- reading ---------------------------------------------------------------------------------

_CHUNK = 1 << 20
_MAX_BLOCK_BYTES = 64 << 20


def _block(personas: List[bytes], path: str, lines: List[int]) -> "pa.Table":
    return pa.table(
        {
            "persona": pa.array(personas, type=pa.binary()),
            "source": pa.array([path] * len(personas), type=pa.string()),
            "line": pa.array(lines, type=pa.int64()),
        }
    )


class PersonaJsonlDatasource(FileBasedDatasource):
    """JSONL persona files, read line by line from a stream (memory: one block)."""

    def __init__(self, paths: Union[str, List[str]], *, rows_per_block: int = 1024, **kwargs: Any) -> None:
        super().__init__(paths, **kwargs)
        if rows_per_block < 1:
            raise ValueError("rows_per_block must be at least 1")
        self._rows_per_block = rows_per_block

    def _read_stream(self, f: "pa.NativeFile", path: str) -> Iterator["pa.Table"]:
        personas: List[bytes] = []
        lines: List[int] = []
        size = 0
        line_no = 0
        pending: List[bytes] = []  # the unfinished line's pieces
        done = False
        while not done:
            chunk: bytes = f.read(_CHUNK)
            done = not chunk
            if done:
                if not pending:
                    break
                chunk = b"\n"  # the last line has no newline
            start = 0
            while True:
                end = chunk.find(b"\n", start)
                if end < 0:
                    if start < len(chunk):
                        pending.append(chunk[start:])
                    break
                text = chunk[start:end]
                start = end + 1
                if pending:
                    pending.append(text)
                    text = b"".join(pending)
                    pending.clear()
                line_no += 1
                if not text.strip():
                    continue  # blank lines are skipped (and counted), as zipp's reader does
                personas.append(text)
                lines.append(line_no)
                size += len(text)
                if len(personas) >= self._rows_per_block or size >= _MAX_BLOCK_BYTES:
                    yield _block(personas, path, lines)
                    personas, lines, size = [], [], 0
        if personas:
            yield _block(personas, path, lines)


class PersonaParquetDatasource(FileBasedDatasource):
    """Parquet files with a string column of persona JSON, read one record batch at a time."""

    def __init__(
        self, paths: Union[str, List[str]], *, column: str = "persona", rows_per_block: int = 1024, **kwargs: Any
    ) -> None:
        super().__init__(paths, **kwargs)
        if rows_per_block < 1:
            raise ValueError("rows_per_block must be at least 1")
        self._column = column
        self._rows_per_block = rows_per_block

    def _open_input_source(self, filesystem: Any, path: str, **open_args: Any) -> "pa.NativeFile":
        # Parquet's footer comes first: a seekable file, not a stream.
        return filesystem.open_input_file(path)

    def _read_stream(self, f: "pa.NativeFile", path: str) -> Iterator["pa.Table"]:
        pf = pq.ParquetFile(f)
        if self._column not in pf.schema_arrow.names:
            raise ValueError(f"{path}: no column {self._column!r} (columns: {pf.schema_arrow.names})")
        row = 0
        for batch in pf.iter_batches(batch_size=self._rows_per_block, columns=[self._column]):
            col = batch.column(0)
            if pa.types.is_large_string(col.type) or pa.types.is_large_binary(col.type):
                col = col.cast(pa.large_binary()).cast(pa.binary())
            elif pa.types.is_string(col.type) or pa.types.is_binary(col.type):
                col = col.cast(pa.binary())
            else:
                raise ValueError(f"{path}: column {self._column!r} is {col.type}, expected a string column of JSON")
            n = len(col)
            yield pa.table(
                {
                    "persona": col,
                    "source": pa.array([path] * n, type=pa.string()),
                    "line": pa.array(np.arange(row + 1, row + n + 1, dtype=np.int64)),
                }
            )
            row += n


def _format_of(paths: Union[_PathLike, Sequence[_PathLike]]) -> str:
    names = [os.fspath(paths)] if isinstance(paths, (str, os.PathLike)) else [os.fspath(p) for p in paths]
    return "parquet" if names and all(n.rstrip("/").endswith(".parquet") for n in names) else "jsonl"


def read_personas(
    paths: Union[_PathLike, Sequence[_PathLike]],
    *,
    format: Optional[str] = None,
    column: str = "persona",
    rows_per_block: int = 1024,
    filesystem: Any = None,
    num_cpus: float = 0,
    **read_args: Any,
) -> "Dataset":
    """A Ray Dataset of the personas in JSONL or Parquet files (files or folders, on
    any filesystem pyarrow reads: local, ``s3://``, ``gs://``, …), streamed a block of
    ``rows_per_block`` rows at a time.

    Columns: ``persona`` (the JSON, bytes; parsed and validated later, in the actors),
    ``source`` (the file), ``line`` (1-based line in a JSONL file, row in a Parquet file).
    ``format``: ``"jsonl"`` or ``"parquet"`` (default: ``"parquet"`` when every path ends in
    ``.parquet``, else ``"jsonl"``: say ``format="parquet"`` for a folder of Parquet files). ``column``: the Parquet column of persona JSON. ``num_cpus``: CPUs each read
    task reserves (default 0, see the module docs). Other keyword arguments go to
    ``ray.data.read_datasource`` (``override_num_blocks``, ``concurrency``, …) or to
    ``FileBasedDatasource`` (``partitioning``, ``ignore_missing_paths``, ``file_extensions``,
    ``shuffle``, ``open_stream_args``, ``include_paths``).
    """
    fmt = format or _format_of(paths)
    names: Union[str, List[str]] = (
        os.fspath(paths) if isinstance(paths, (str, os.PathLike)) else [os.fspath(p) for p in paths]
    )
    datasource_keys = {
        "partitioning", "partition_filter", "ignore_missing_paths", "file_extensions",
        "shuffle", "open_stream_args", "include_paths", "meta_provider",
    }
    ds_kwargs = {k: read_args.pop(k) for k in list(read_args) if k in datasource_keys}
    source: FileBasedDatasource
    if fmt == "jsonl":
        source = PersonaJsonlDatasource(names, rows_per_block=rows_per_block, filesystem=filesystem, **ds_kwargs)
    elif fmt == "parquet":
        source = PersonaParquetDatasource(
            names, column=column, rows_per_block=rows_per_block, filesystem=filesystem, **ds_kwargs
        )
    else:
        raise ValueError(f"format must be 'jsonl' or 'parquet', not {format!r}")
    dataset: Dataset = ray.data.read_datasource(source, num_cpus=num_cpus, **read_args)
    return dataset


# ---- the actors' common part -----------------------------------------------------------------

#: Times this process loaded zipp's models for a callable (each actor: once).
_MODEL_LOADS = 0


def _actor_threads() -> Optional[int]:
    """The threads for zipp in this Ray actor: its assigned CPUs, floored, at least 1 (as Ray
    sets ``OMP_NUM_THREADS``); ``None`` outside an actor."""
    if not ray.is_initialized():
        return None
    ctx = ray.get_runtime_context()
    if ctx.get_actor_id() is None:
        return None
    assigned: Dict[str, float] = ctx.get_assigned_resources()  # type: ignore[no-untyped-call]
    cpus = assigned.get("CPU")
    return max(math.floor(cpus), 1) if cpus else 1


class _RowError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _describe(e: ZippError) -> str:
    """zipp's message without the line/column of the one-record text it parsed (the row's
    location says where the record is); column and field stay."""
    loc = e.location
    if loc is None:
        return str(e)
    parts = []
    if loc.column is not None:
        parts.append(f"column {loc.column}")
    if loc.field is not None:
        parts.append(f"field `{loc.field}`")
    return (", ".join(parts) + ": " if parts else "") + e.message


def _parse_persona(value: Any) -> _zipp.Persona:
    """A persona from a cell: JSON text (str or bytes), a Persona, or a dict."""
    if isinstance(value, _zipp.Persona):
        return value
    try:
        if value is None:
            raise _RowError("schema", "no persona (the cell is null)")
        if isinstance(value, (bytes, bytearray, memoryview)):
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                raise _RowError("parse", "line is not valid UTF-8") from None
        if isinstance(value, str):
            return _zipp.Persona.from_json(value)
        if isinstance(value, Mapping):
            return _zipp.Persona.from_dict(dict(value))
    except ZippError as e:
        raise _RowError(e.kind, _describe(e)) from None
    raise _RowError("schema", f"a persona cell must be JSON text, a dict or a Persona, not {type(value).__name__}")


def _locations(batch: Batch, n: int) -> List[str]:
    source, line = batch.get("source"), batch.get("line")
    if source is None or line is None:
        return [""] * n
    return [f"{s}:{int(l)}" for s, l in zip(source, line)]


def _strings(values: Sequence[str]) -> npt.NDArray[Any]:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


class _ZippActor:
    """Threads set up and models loaded once, in the actor's ``__init__``."""

    #: Model kinds to load up front (the rest load on first use).
    _KINDS: Tuple[str, ...] = ("minilm", "clip_bpe")

    def __init__(
        self, *, models_dir: Optional[_PathLike] = None, threads: Optional[int] = None, diagnostics: bool = False
    ) -> None:
        global _MODEL_LOADS
        if threads is None:
            threads = _actor_threads()  # outside an actor: the process's own setting
        if threads is not None:
            if threads < 1:
                raise ValueError("threads must be at least 1")
            os.environ["ZIPP_NUM_THREADS"] = str(threads)
        #: Threads of this process's zipp pool (fixed at its first zipp call).
        self.threads: int = _zipp.num_threads()
        if threads is not None and self.threads != threads:
            warnings.warn(
                f"zipp's thread pool in this process has {self.threads} threads, not {threads}: "
                "it was built by an earlier zipp call",
                RuntimeWarning,
                stacklevel=2,
            )
        self.pid = os.getpid()
        self.diagnostics = diagnostics
        self.models = _zipp.Models(models_dir)
        for kind in self._KINDS:
            self.models.load(kind)
        _MODEL_LOADS += 1
        #: Model loads of this process so far (1 in each actor).
        self.loads = _MODEL_LOADS

    def _finish(self, out: Batch, n: int) -> Batch:
        if self.diagnostics:
            out["zipp_pid"] = np.full(n, self.pid, dtype=np.int64)
            out["zipp_threads"] = np.full(n, self.threads, dtype=np.int64)
            out["zipp_loads"] = np.full(n, _MODEL_LOADS, dtype=np.int64)
        return out


def _rows(batch: Batch) -> int:
    return len(next(iter(batch.values()))) if batch else 0


# ---- the callables ---------------------------------------------------------------------------


class Embed(_ZippActor):
    """``Models.embed`` over a text column: adds ``output_column`` (default ``"embedding"``),
    a float32 tensor column of shape ``(n, 384)``.

    ``ds.map_batches(Embed, fn_constructor_kwargs={"text_column": "caption"},
    compute=ray.data.ActorPoolStrategy(size=2), num_cpus=1, batch_size=256)``
    """

    _KINDS = ("minilm",)

    def __init__(
        self,
        *,
        text_column: str = "text",
        output_column: str = "embedding",
        models_dir: Optional[_PathLike] = None,
        threads: Optional[int] = None,
        diagnostics: bool = False,
    ) -> None:
        super().__init__(models_dir=models_dir, threads=threads, diagnostics=diagnostics)
        self.text_column = text_column
        self.output_column = output_column

    def __call__(self, batch: Batch) -> Batch:
        texts = [str(t) for t in batch[self.text_column]]
        out = dict(batch)
        if texts:
            out[self.output_column] = self.models.embed(texts)
        else:
            out[self.output_column] = np.zeros((0, self.models.dim), dtype=np.float32)
        return self._finish(out, len(texts))


class Personalize(_ZippActor):
    """Personalizes prompts for the personas of a column with any method spec (a name like
    ``"vprag"``, a spec dict or its JSON — the ZIPP rewriter with a local GGUF or an
    ``{"openai": …}`` model included), built once per actor with
    ``Personalizer.from_spec(models, spec)``.

    With ``prompts=[…]`` (strings or request dicts ``{"prompt", "task", "seed",
    "token_budget"}``) each persona row becomes one row per prompt
    (``personalize_batch(persona, prompts)``; the base prompt in ``query``); without, each row
    is personalized for its own ``query_column`` (``personalize(persona, query, task=…,
    seed=…, token_budget=…)``).

    Adds: ``persona_id``, ``query``, ``method``, ``prompt`` (the personalized prompt),
    ``negative_prompt`` (``""`` when none), ``personalization`` (``Personalization.to_json()``:
    method, prompt, evidence), ``error``, ``error_kind``, ``location``.
    """

    def __init__(
        self,
        spec: Union[str, Mapping[str, Any]],
        *,
        prompts: Optional[Sequence[Union[str, Mapping[str, Any]]]] = None,
        persona_column: str = "persona",
        query_column: str = "query",
        task: str = "generate",
        seed: Optional[int] = None,
        token_budget: Optional[int] = None,
        models_dir: Optional[_PathLike] = None,
        threads: Optional[int] = None,
        diagnostics: bool = False,
    ) -> None:
        super().__init__(models_dir=models_dir, threads=threads, diagnostics=diagnostics)
        self.personalizer = _zipp.Personalizer.from_spec(self.models, spec)
        self.method = self.personalizer.name
        self.prompts: Optional[List[Any]] = None if prompts is None else [
            p if isinstance(p, str) else dict(p) for p in prompts
        ]
        self.persona_column = persona_column
        self.query_column = query_column
        self.task = task
        self.seed = seed
        self.token_budget = token_budget

    def __call__(self, batch: Batch) -> Batch:
        n = _rows(batch)
        locations = _locations(batch, n)
        index: List[int] = []
        cols: Dict[str, List[str]] = {
            k: [] for k in ("persona_id", "query", "method", "prompt", "negative_prompt", "personalization",
                            "error", "error_kind", "location")
        }

        def add(i: int, persona_id: str, query: str, out: Optional[_zipp.Personalization], err: Optional[_RowError]) -> None:
            index.append(i)
            cols["persona_id"].append(persona_id)
            cols["query"].append(query)
            cols["method"].append(self.method)
            cols["prompt"].append(out.prompt if out is not None else "")
            cols["negative_prompt"].append((out.negative_prompt or "") if out is not None else "")
            cols["personalization"].append(out.to_json() if out is not None else "")
            cols["error"].append(err.message if err is not None else "")
            cols["error_kind"].append(err.kind if err is not None else "")
            cols["location"].append(locations[i])

        for i in range(n):
            persona: Optional[_zipp.Persona] = None
            try:
                persona = _parse_persona(batch[self.persona_column][i])
            except _RowError as e:
                for q in self._queries(batch, i):
                    add(i, "", q, None, e)
                continue
            if self.prompts is not None:
                queries = self._queries(batch, i)
                try:
                    outs = self.personalizer.personalize_batch(persona, self.prompts)
                except ZippError as e:
                    for q in queries:
                        add(i, persona.id, q, None, _RowError(e.kind, str(e)))
                    continue
                for q, out in zip(queries, outs):
                    add(i, persona.id, q, out, None)
            else:
                query = str(batch[self.query_column][i])
                try:
                    out = self.personalizer.personalize(
                        persona, query, task=self.task, seed=self.seed, token_budget=self.token_budget
                    )
                except ZippError as e:
                    add(i, persona.id, query, None, _RowError(e.kind, str(e)))
                    continue
                add(i, persona.id, query, out, None)

        take = np.asarray(index, dtype=np.int64)
        out_batch: Batch = {k: v[take] for k, v in batch.items()}
        for k, values in cols.items():
            out_batch[k] = _strings(values)
        return self._finish(out_batch, len(index))

    def _queries(self, batch: Batch, i: int) -> List[str]:
        if self.prompts is None:
            return [str(batch[self.query_column][i])]
        return [p if isinstance(p, str) else str(p.get("prompt", "")) for p in self.prompts]


class Score(_ZippActor):
    """The VPTT score (SPEC §4) of each row's ``prompt_column`` against its persona:
    ``PersonaScorer(models, persona, options).score_one(prompt)``, the scorer's state built
    once per persona in a batch (rows of one persona are best kept together, as
    :class:`Personalize` emits them).

    Adds float64 columns ``pa``, ``gs``, ``cp``, ``cp_soft``, ``nv``, ``nv_soft`` (NaN unless
    ``options={"novelty": "soft"}``), ``vptt``, ``vptt_c``, and ``persona_id``, ``error``,
    ``error_kind``, ``location``.
    """

    _CACHE = 16

    def __init__(
        self,
        options: Optional[Union[str, Mapping[str, Any]]] = None,
        *,
        persona_column: str = "persona",
        prompt_column: str = "prompt",
        models_dir: Optional[_PathLike] = None,
        threads: Optional[int] = None,
        diagnostics: bool = False,
    ) -> None:
        super().__init__(models_dir=models_dir, threads=threads, diagnostics=diagnostics)
        self.options: Optional[Union[str, Dict[str, Any]]] = (
            None if options is None else options if isinstance(options, str) else dict(options)
        )
        self.persona_column = persona_column
        self.prompt_column = prompt_column
        self._scorers: Dict[Any, Union[_zipp.PersonaScorer, _RowError]] = {}

    def _scorer(self, cell: Any) -> Tuple[str, _zipp.PersonaScorer]:
        key: Any = cell.to_json() if isinstance(cell, _zipp.Persona) else (
            bytes(cell) if isinstance(cell, (bytearray, memoryview)) else
            json.dumps(cell, sort_keys=True) if isinstance(cell, Mapping) else cell
        )
        hit = self._scorers.get(key)
        if hit is None:
            try:
                persona = _parse_persona(cell)
                hit = _zipp.PersonaScorer(self.models, persona, self.options)
            except _RowError as e:
                hit = e
            except ZippError as e:
                hit = _RowError(e.kind, str(e))
            if len(self._scorers) >= self._CACHE:
                self._scorers.pop(next(iter(self._scorers)))
            self._scorers[key] = hit
        if isinstance(hit, _RowError):
            raise hit
        return hit.persona_id, hit

    def __call__(self, batch: Batch) -> Batch:
        n = _rows(batch)
        locations = _locations(batch, n)
        scores = {f: np.full(n, np.nan, dtype=np.float64) for f in _SCORE_FIELDS}
        ids, errors, kinds = [""] * n, [""] * n, [""] * n
        for i in range(n):
            try:
                ids[i], scorer = self._scorer(batch[self.persona_column][i])
                s = scorer.score_one(str(batch[self.prompt_column][i]))
            except _RowError as e:
                errors[i], kinds[i] = e.message, e.kind
                continue
            except ZippError as e:
                errors[i], kinds[i] = str(e), e.kind
                continue
            for f, v in s.to_dict().items():
                scores[f][i] = np.nan if v is None else v
        out = dict(batch)
        out.update(scores)
        out["persona_id"] = _strings(ids)
        out["error"] = _strings(errors)
        out["error_kind"] = _strings(kinds)
        out["location"] = _strings(locations)
        return self._finish(out, n)


class EvaluateBatch(_ZippActor):
    """One batch of personas evaluated with a fresh ``Evaluation(models, config)``: returns
    one ``kind="aggregate"`` row (``aggregate``: ``EvalAggregate.to_json()``, ``personas``:
    how many it holds) and one ``kind="error"`` row per persona that failed (``error``,
    ``error_kind``, ``location``, ``persona_id``). Every row also says which actor made it
    and what the batch cost there: ``zipp_pid``, ``zipp_threads``, ``zipp_loads``,
    ``wall_seconds`` and ``cpu_seconds`` (this process's user+system time) of the batch,
    ``maxrss_mib`` (the actor's peak resident memory so far).

    Merge the aggregates with ``zipp_persona.merge_aggregates`` (:func:`evaluate` does it
    all).
    """

    _COLUMNS = ("kind", "aggregate", "persona_id", "error", "error_kind", "location")

    def __init__(
        self,
        config: Optional[Union[str, Mapping[str, Any]]] = None,
        *,
        persona_column: str = "persona",
        models_dir: Optional[_PathLike] = None,
        threads: Optional[int] = None,
    ) -> None:
        super().__init__(models_dir=models_dir, threads=threads, diagnostics=True)
        self.config: Optional[Union[str, Dict[str, Any]]] = (
            None if config is None else config if isinstance(config, str) else dict(config)
        )
        self.persona_column = persona_column
        # A bad config fails here, at actor start, not on every batch.
        _zipp.Evaluation(self.models, self.config)

    def __call__(self, batch: Batch) -> Batch:
        wall0, cpu0 = time.perf_counter(), _cpu_seconds()
        n = _rows(batch)
        locations = _locations(batch, n)
        ev = _zipp.Evaluation(self.models, self.config)
        rows: List[Tuple[str, str, str, str, str, str]] = []
        for i in range(n):
            persona_id = ""
            try:
                persona = _parse_persona(batch[self.persona_column][i])
                persona_id = persona.id
                ev.add_persona(persona)
            except _RowError as e:
                rows.append(("error", "", persona_id, e.message, e.kind, locations[i]))
            except ZippError as e:
                rows.append(("error", "", persona_id, str(e), e.kind, locations[i]))
        rows.insert(0, ("aggregate", ev.aggregate().to_json(), "", "", "", ""))
        m = len(rows)
        out: Batch = {name: _strings([r[j] for r in rows]) for j, name in enumerate(self._COLUMNS)}
        out["personas"] = np.array([ev.personas] + [0] * (m - 1), dtype=np.int64)
        out["wall_seconds"] = np.array([time.perf_counter() - wall0] + [0.0] * (m - 1))
        out["cpu_seconds"] = np.array([_cpu_seconds() - cpu0] + [0.0] * (m - 1))
        out["maxrss_mib"] = np.full(m, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
        return self._finish(out, m)


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ---- distributed evaluation ------------------------------------------------------------------


@dataclass
class ActorStats:
    """What one actor reported over an evaluation."""

    pid: int
    threads: int
    loads: int
    batches: int = 0
    personas: int = 0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    maxrss_mib: float = 0.0


@dataclass
class EvalResult:
    """:func:`evaluate`'s result: ``report`` (equal to a local ``Evaluation``'s but for
    ``timings``), ``errors`` (one dict per persona that failed: ``location``, ``error``,
    ``error_kind``, ``persona_id``), the merged ``aggregate`` and per-actor ``actors``
    statistics (keyed by pid). Unpacks as ``report, errors = evaluate(...)``."""

    report: _zipp.Report
    errors: List[Dict[str, str]]
    aggregate: _zipp.EvalAggregate
    actors: Dict[int, ActorStats] = field(default_factory=dict)
    batches: int = 0

    def __iter__(self) -> Iterator[Any]:
        yield self.report
        yield self.errors


def evaluate(
    data: Union["Dataset", _PathLike, Sequence[_PathLike]],
    config: Optional[Union[str, Mapping[str, Any]]] = None,
    *,
    concurrency: int = 2,
    num_cpus: float = 1,
    models_dir: Optional[_PathLike] = None,
    batch_size: int = 16,
    persona_column: str = "persona",
    threads: Optional[int] = None,
    read_args: Optional[Mapping[str, Any]] = None,
    **map_args: Any,
) -> EvalResult:
    """Evaluates personas on Ray (the driver must have called ``ray.init``, or Ray starts a
    local cluster): ``data`` is a Dataset with a ``persona_column`` or JSONL/Parquet paths for
    :func:`read_personas` (with ``read_args``). ``concurrency`` actors of ``num_cpus`` CPUs
    each run :class:`EvaluateBatch` on batches of ``batch_size`` personas (one batch in flight
    per actor: keep several batches per actor, or some idle); the driver merges their
    aggregates as they stream in. ``map_args`` go to ``map_batches`` (e.g. ``memory``,
    ``max_restarts``). Returns an :class:`EvalResult`; raises if the config is invalid or the
    aggregates disagree (``InvalidInputError``)."""
    if isinstance(data, (str, os.PathLike)) or (
        isinstance(data, Sequence) and not isinstance(data, (bytes, bytearray))
    ):
        ds = read_personas(data, **dict(read_args or {}))
    else:
        ds = data
    results = ds.map_batches(
        EvaluateBatch,
        fn_constructor_args=(None if config is None else config if isinstance(config, str) else dict(config),),
        fn_constructor_kwargs={"persona_column": persona_column, "models_dir": models_dir, "threads": threads},
        # One batch at a time per actor: a batch takes seconds, and a second one queued on a
        # busy actor would wait there while another actor idles.
        compute=ray.data.ActorPoolStrategy(size=concurrency, max_tasks_in_flight_per_actor=1),
        num_cpus=num_cpus,
        batch_size=batch_size,
        batch_format="numpy",
        **map_args,
    )
    total: Optional[_zipp.EvalAggregate] = None
    errors: List[Dict[str, str]] = []
    actors: Dict[int, ActorStats] = {}
    batches = 0
    for out in results.iter_batches(batch_size=None, batch_format="numpy"):
        for j in range(len(out["kind"])):
            pid = int(out["zipp_pid"][j])
            stats = actors.get(pid)
            if stats is None:
                stats = actors[pid] = ActorStats(pid, int(out["zipp_threads"][j]), int(out["zipp_loads"][j]))
            stats.loads = max(stats.loads, int(out["zipp_loads"][j]))
            stats.maxrss_mib = max(stats.maxrss_mib, float(out["maxrss_mib"][j]))
            if out["kind"][j] == "aggregate":
                part = _zipp.EvalAggregate.from_json(str(out["aggregate"][j]))
                total = part if total is None else total.merge(part)
                batches += 1
                stats.batches += 1
                stats.personas += int(out["personas"][j])
                stats.wall_seconds += float(out["wall_seconds"][j])
                stats.cpu_seconds += float(out["cpu_seconds"][j])
            else:
                errors.append(
                    {k: str(out[k][j]) for k in ("location", "error", "error_kind", "persona_id")}
                )
    if total is None:
        raise ValueError("evaluate: the dataset has no rows")
    return EvalResult(report=total.report(), errors=errors, aggregate=total, actors=actors, batches=batches)
