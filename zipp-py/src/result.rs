//! `Personalization` and its `Evidence`: the Rust values are kept and converted only when
//! an attribute is read, so a call that only wants the prompt pays for nothing else.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyString;
use zipp_core::personalize as core;

use crate::json;

/// Python's `repr` of a string (Rust's `{:?}` escapes differently).
pub(crate) fn py_repr(py: Python<'_>, s: &str) -> PyResult<String> {
    Ok(PyString::new(py, s).repr()?.to_string())
}

/// What a personalizer produced: the rewritten `prompt` and the `evidence` behind it.
#[pyclass(frozen, module = "zipp_persona")]
pub struct Personalization {
    pub(crate) inner: Arc<core::Personalization>,
}

impl Personalization {
    pub(crate) fn new(p: core::Personalization) -> Personalization {
        Personalization { inner: Arc::new(p) }
    }
}

#[pymethods]
impl Personalization {
    /// The personalizer's name (`"vprag"` …).
    #[getter]
    fn method(&self) -> &str {
        &self.inner.method
    }

    /// The rewritten prompt.
    #[getter]
    fn prompt(&self) -> &str {
        &self.inner.prompt
    }

    #[getter]
    fn negative_prompt(&self) -> Option<&str> {
        self.inner.negative_prompt.as_deref()
    }

    /// Liked/disliked attribute text and strengths for embedding steering, or `None`.
    #[getter]
    fn steering<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner.steering.as_ref().map(|s| json::to_python(py, s)).transpose()
    }

    /// Why the prompt came out as it did.
    #[getter]
    fn evidence(&self) -> Evidence {
        Evidence { inner: self.inner.clone() }
    }

    /// A few human-readable lines: prompt, token use, n_eff and K, top posts, categories.
    fn explain(&self) -> String {
        self.inner.explain()
    }

    /// Everything as a dict shaped like `to_json()`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json::to_python(py, self.inner.as_ref())
    }

    /// Everything as JSON text (compact, or indented with `pretty=True`).
    #[pyo3(signature = (pretty = false))]
    fn to_json(&self, pretty: bool) -> String {
        let out = if pretty { serde_json::to_string_pretty(&*self.inner) } else { serde_json::to_string(&*self.inner) };
        out.expect("a personalization serialises to JSON")
    }

    fn __eq__(&self, other: &Bound<'_, Personalization>) -> bool {
        *self.inner == *other.get().inner
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let ev = &self.inner.evidence;
        Ok(format!(
            "Personalization(method={}, prompt={}, tokens={}/{}, posts={}, elements={})",
            py_repr(py, &self.inner.method)?,
            py_repr(py, &self.inner.prompt)?,
            ev.tokens,
            ev.content_budget,
            ev.posts.len(),
            ev.elements.len()
        ))
    }
}

/// The evidence of a personalization (SPEC §2): retrieved posts, chosen elements, category
/// budgets and the VPRAG statistics (`None` for methods that do not compute them).
#[pyclass(frozen, module = "zipp_persona")]
pub struct Evidence {
    inner: Arc<core::Personalization>,
}

impl Evidence {
    fn ev(&self) -> &core::Evidence {
        &self.inner.evidence
    }
}

#[pymethods]
impl Evidence {
    /// Retrieved posts, most relevant first.
    #[getter]
    fn posts(&self) -> Vec<EvidencePost> {
        self.ev().posts.iter().map(EvidencePost::from).collect()
    }

    /// Chosen elements in the order they were offered to the composer.
    #[getter]
    fn elements(&self) -> Vec<EvidenceElement> {
        self.ev().elements.iter().map(EvidenceElement::from).collect()
    }

    /// Categories in priority order with their budgets and allocations (VPRAG).
    #[getter]
    fn categories(&self) -> Vec<EvidenceCategory> {
        self.ev().categories.iter().map(EvidenceCategory::from).collect()
    }

    /// Softmax entropy H of the post weights (VPRAG).
    #[getter]
    fn entropy(&self) -> Option<f64> {
        self.ev().entropy
    }

    /// `exp(H)`, the effective number of relevant posts (VPRAG).
    #[getter]
    fn n_eff(&self) -> Option<f64> {
        self.ev().n_eff
    }

    /// Posts kept, `K` (VPRAG).
    #[getter]
    fn k(&self) -> Option<usize> {
        self.ev().k
    }

    /// `Q`, the sum of the per-category budgets (VPRAG).
    #[getter]
    fn total_budget(&self) -> Option<usize> {
        self.ev().total_budget
    }

    /// Content tokens allowed: the token budget less the start/end markers.
    #[getter]
    fn content_budget(&self) -> usize {
        self.ev().content_budget
    }

    /// Content tokens of the final prompt.
    #[getter]
    fn tokens(&self) -> usize {
        self.ev().tokens
    }

    /// Selected elements that were exact duplicates of better ones.
    #[getter]
    fn duplicates_dropped(&self) -> usize {
        self.ev().duplicates_dropped
    }

    /// Pieces that did not fit the token budget.
    #[getter]
    fn dropped_by_budget(&self) -> usize {
        self.ev().dropped_by_budget
    }

    #[getter]
    fn notes(&self) -> Vec<String> {
        self.ev().notes.clone()
    }

    /// Everything as a dict (the `evidence` part of `Personalization.to_dict()`).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json::to_python(py, self.ev())
    }

    fn __repr__(&self) -> String {
        let ev = self.ev();
        let opt = |v: Option<String>| v.unwrap_or_else(|| "None".into());
        format!(
            "Evidence(posts={}, elements={}, n_eff={}, k={}, tokens={}/{}, dropped_by_budget={}, notes={})",
            ev.posts.len(),
            ev.elements.len(),
            opt(ev.n_eff.map(|n| format!("{n:.3}"))),
            opt(ev.k.map(|k| k.to_string())),
            ev.tokens,
            ev.content_budget,
            ev.dropped_by_budget,
            ev.notes.len()
        )
    }
}

/// A retrieved post.
#[pyclass(frozen, get_all, eq, module = "zipp_persona")]
#[derive(PartialEq)]
pub struct EvidencePost {
    /// Position in the persona's memory.
    index: usize,
    id: Option<String>,
    caption: String,
    /// Cosine between the query and the caption.
    score: f32,
    /// Softmax weight (VPRAG); `None` for plain top-k retrieval.
    weight: Option<f64>,
    /// Whether the caption itself was placed in the prompt (BRAG / Combined).
    caption_used: bool,
}

impl From<&core::EvidencePost> for EvidencePost {
    fn from(p: &core::EvidencePost) -> Self {
        EvidencePost {
            index: p.index,
            id: p.id.clone(),
            caption: p.caption.clone(),
            score: p.score,
            weight: p.weight,
            caption_used: p.caption_used,
        }
    }
}

#[pymethods]
impl EvidencePost {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "EvidencePost(index={}, score={:.3}, weight={}, caption_used={}, caption={})",
            self.index,
            self.score,
            self.weight.map_or("None".into(), |w| format!("{w:.3}")),
            if self.caption_used { "True" } else { "False" },
            py_repr(py, &self.caption)?
        ))
    }
}

/// A chosen element.
#[pyclass(frozen, get_all, eq, module = "zipp_persona")]
#[derive(PartialEq)]
pub struct EvidenceElement {
    category: String,
    text: String,
    /// Position in the persona's memory of the post it came from.
    post: usize,
    /// Cosine between the query and the element.
    score: f32,
    /// Whether it made it into the prompt (`False`: cut by the token budget).
    used: bool,
}

impl From<&core::EvidenceElement> for EvidenceElement {
    fn from(e: &core::EvidenceElement) -> Self {
        EvidenceElement {
            category: e.category.clone(),
            text: e.text.clone(),
            post: e.post,
            score: e.score,
            used: e.used,
        }
    }
}

#[pymethods]
impl EvidenceElement {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "EvidenceElement(category={}, text={}, post={}, score={:.3}, used={})",
            py_repr(py, &self.category)?,
            py_repr(py, &self.text)?,
            self.post,
            self.score,
            if self.used { "True" } else { "False" }
        ))
    }
}

/// One category's budget and allocation (VPRAG).
#[pyclass(frozen, get_all, eq, module = "zipp_persona")]
#[derive(PartialEq)]
pub struct EvidenceCategory {
    name: String,
    /// `q · unit(embed(description))`.
    priority: f32,
    /// `Q^(k)`.
    budget: usize,
    /// Elements available in the selected posts.
    available: usize,
    /// Elements allocated.
    allocated: usize,
}

impl From<&core::EvidenceCategory> for EvidenceCategory {
    fn from(c: &core::EvidenceCategory) -> Self {
        EvidenceCategory {
            name: c.name.clone(),
            priority: c.priority,
            budget: c.budget,
            available: c.available,
            allocated: c.allocated,
        }
    }
}

#[pymethods]
impl EvidenceCategory {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "EvidenceCategory(name={}, priority={:.3}, budget={}, available={}, allocated={})",
            py_repr(py, &self.name)?,
            self.priority,
            self.budget,
            self.available,
            self.allocated
        ))
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Personalization>()?;
    m.add_class::<Evidence>()?;
    m.add_class::<EvidencePost>()?;
    m.add_class::<EvidenceElement>()?;
    m.add_class::<EvidenceCategory>()?;
    Ok(())
}
