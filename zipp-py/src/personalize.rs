//! Personalizers, built only through `zipp_core::personalize::MethodSpec` so Python, C and
//! Rust accept the same names, options, defaults and errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use zipp_core::personalize::{Personalizer as CorePersonalizer, Request, Task};
use zipp_factory::MethodSpec;

use crate::error::to_py_err;
use crate::json;
use crate::models::Models;
use crate::persona::Persona;
use crate::result::Personalization;
use crate::zipp_call;

/// Turns a persona and a base prompt into a `Personalization`. Build one with a subclass
/// (`Vprag(models)`, …) or `Personalizer.from_spec(models, spec)`; share it between threads.
#[pyclass(subclass, frozen, module = "zipp_persona")]
pub struct Personalizer {
    inner: Arc<dyn CorePersonalizer>,
    spec: MethodSpec,
}

impl Personalizer {
    fn build(py: Python<'_>, models: &zipp_factory::Models, spec: MethodSpec) -> PyResult<Personalizer> {
        let inner = zipp_call(py, || spec.build(models))?;
        Ok(Personalizer { inner, spec })
    }

    /// The defaults of `method`, from zipp-core.
    fn defaults(method: &str) -> PyResult<MethodSpec> {
        MethodSpec::from_json(method).map_err(to_py_err)
    }

    /// An instance of the subclass that matches the spec's method.
    fn into_instance(self, py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        // By the spec's variant, not its name: a pipeline may be called anything.
        let method = match &self.spec {
            MethodSpec::Pipeline { .. } => String::new(),
            flat => flat.name().to_string(),
        };
        let init = PyClassInitializer::from(self);
        Ok(match method.as_str() {
            "identity" => Bound::new(py, init.add_subclass(Identity))?.into_any(),
            "persona_only" => Bound::new(py, init.add_subclass(PersonaOnly))?.into_any(),
            "brag" => Bound::new(py, init.add_subclass(Brag))?.into_any(),
            "vprag" => Bound::new(py, init.add_subclass(Vprag))?.into_any(),
            "combined" => Bound::new(py, init.add_subclass(Combined))?.into_any(),
            // A method newer than these classes still works through the base class.
            _ => Bound::new(py, init)?.into_any(),
        })
    }
}

/// A method spec from a dict or from JSON text / a bare method name.
fn spec_from_python(spec: &Bound<'_, PyAny>) -> PyResult<MethodSpec> {
    if let Ok(text) = spec.downcast::<PyString>() {
        return MethodSpec::from_json(&text.to_cow()?).map_err(to_py_err);
    }
    if spec.is_instance_of::<PyDict>() {
        let text = json::dumps(spec)?;
        return MethodSpec::from_json(&text).map_err(|e| to_py_err(json::unlocated_text(e)));
    }
    Err(PyTypeError::new_err(format!(
        "a method spec is a dict ({{\"method\": \"vprag\", …}}) or a method name, not {}",
        spec.get_type().name()?
    )))
}

#[pymethods]
impl Personalizer {
    /// Builds the personalizer a spec describes: a dict such as
    /// `{"method": "vprag", "temperature": 0.1, "budgets": {"lighting": 2}}` or a method name
    /// (`"identity"`, `"persona_only"`, `"brag"`, `"vprag"`, `"combined"`); omitted options
    /// take zipp-core's defaults. Returns an instance of the matching subclass.
    #[staticmethod]
    fn from_spec<'py>(
        py: Python<'py>,
        models: &Bound<'py, Models>,
        spec: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let spec = spec_from_python(spec)?;
        Personalizer::build(py, &models.get().inner, spec)?.into_instance(py)
    }

    /// The method's stable name (`"vprag"` …).
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// The spec it was built from, every default written out.
    #[getter]
    fn spec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json::loads(py, &self.spec.to_json())
    }

    /// Personalizes one prompt for `persona`. `token_budget` overrides the personalizer's
    /// (the target encoder's context including its start/end markers); `seed` is for
    /// stochastic methods (the current ones are deterministic).
    #[pyo3(signature = (persona, prompt, *, task = "generate", seed = None, token_budget = None))]
    fn personalize(
        &self,
        py: Python<'_>,
        persona: &Bound<'_, Persona>,
        prompt: String,
        task: &str,
        seed: Option<u64>,
        token_budget: Option<usize>,
    ) -> PyResult<Personalization> {
        let persona = &persona.get().inner;
        let out = zipp_call(py, || {
            let task = Task::from_name(task)?;
            let request = Request { prompt, task, seed, token_budget };
            self.inner.personalize(persona, &request)
        })?;
        Ok(Personalization::new(out))
    }

    /// Personalizes many prompts for one persona (embedding methods embed them in one
    /// batch). Each item is a prompt string or a dict
    /// `{"prompt": str, "task": "generate" | "edit", "seed": int, "token_budget": int}`;
    /// unknown keys are an error naming the item (`[1].promt`).
    fn personalize_batch(
        &self,
        py: Python<'_>,
        persona: &Bound<'_, Persona>,
        prompts: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<Personalization>> {
        if !(prompts.is_instance_of::<PyList>() || prompts.is_instance_of::<PyTuple>()) {
            return Err(PyTypeError::new_err(format!(
                "prompts must be a list of prompt strings or request dicts, not {}",
                prompts.get_type().name()?
            )));
        }
        let text = json::dumps(prompts)?;
        let persona = &persona.get().inner;
        let out = zipp_call(py, || {
            let requests = Request::list_from_json(&text).map_err(json::unlocated_text)?;
            self.inner.personalize_batch(persona, &requests)
        })?;
        Ok(out.into_iter().map(Personalization::new).collect())
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let spec = slf.get().spec(slf.py())?;
        Ok(format!("{}(spec={})", slf.get_type().qualname()?, spec.repr()?))
    }
}

/// The prompt unchanged (the evaluation baseline).
#[pyclass(extends = Personalizer, frozen, module = "zipp_persona")]
pub struct Identity;

#[pymethods]
impl Identity {
    #[new]
    fn new(py: Python<'_>) -> PyResult<PyClassInitializer<Self>> {
        // Identity loads no model; the Models value is only what MethodSpec::build takes.
        let spec = Personalizer::defaults("identity")?;
        let base = Personalizer::build(py, &zipp_factory::Models::new(), spec)?;
        Ok(PyClassInitializer::from(base).add_subclass(Identity))
    }
}

/// The prompt plus the persona's summary sentences, demographics and interests (no memory).
#[pyclass(extends = Personalizer, frozen, module = "zipp_persona")]
pub struct PersonaOnly;

#[pymethods]
impl PersonaOnly {
    /// Options left `None` take zipp-core's defaults (as in `spec`).
    #[new]
    #[pyo3(signature = (models, *, token_budget = None))]
    fn new(
        py: Python<'_>,
        models: &Bound<'_, Models>,
        token_budget: Option<usize>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let mut spec = Personalizer::defaults("persona_only")?;
        if let MethodSpec::PersonaOnly { token_budget: tb } = &mut spec {
            *tb = token_budget.or(*tb);
        }
        let base = Personalizer::build(py, &models.get().inner, spec)?;
        Ok(PyClassInitializer::from(base).add_subclass(PersonaOnly))
    }
}

/// The prompt plus the `k` captions most similar to it (BRAG).
#[pyclass(extends = Personalizer, frozen, module = "zipp_persona")]
pub struct Brag;

#[pymethods]
impl Brag {
    /// Options left `None` take zipp-core's defaults (`k = 3`).
    #[new]
    #[pyo3(signature = (models, *, k = None, token_budget = None))]
    fn new(
        py: Python<'_>,
        models: &Bound<'_, Models>,
        k: Option<usize>,
        token_budget: Option<usize>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let mut spec = Personalizer::defaults("brag")?;
        if let MethodSpec::Brag { k: spec_k, token_budget: tb } = &mut spec {
            *spec_k = k.unwrap_or(*spec_k);
            *tb = token_budget.or(*tb);
        }
        let base = Personalizer::build(py, &models.get().inner, spec)?;
        Ok(PyClassInitializer::from(base).add_subclass(Brag))
    }
}

/// VPRAG (SPEC §3): entropy-guided post selection, per-category quotas, element ranking.
#[pyclass(extends = Personalizer, frozen, module = "zipp_persona")]
pub struct Vprag;

#[pymethods]
impl Vprag {
    /// Options left `None` take zipp-core's defaults (`temperature = 0.1`,
    /// `default_budget = 3` elements per category, no per-category `budgets`, 77 tokens).
    #[new]
    #[pyo3(signature = (models, *, temperature = None, default_budget = None, budgets = None, token_budget = None))]
    fn new(
        py: Python<'_>,
        models: &Bound<'_, Models>,
        temperature: Option<f32>,
        default_budget: Option<usize>,
        budgets: Option<BTreeMap<String, usize>>,
        token_budget: Option<usize>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let mut spec = Personalizer::defaults("vprag")?;
        if let MethodSpec::Vprag { temperature: t, default_budget: d, budgets: b, token_budget: tb } = &mut spec {
            *t = temperature.unwrap_or(*t);
            *d = default_budget.unwrap_or(*d);
            *b = budgets.unwrap_or_else(|| b.clone());
            *tb = token_budget.or(*tb);
        }
        let base = Personalizer::build(py, &models.get().inner, spec)?;
        Ok(PyClassInitializer::from(base).add_subclass(Vprag))
    }
}

/// BRAG captions followed by VPRAG elements under one budget.
#[pyclass(extends = Personalizer, frozen, module = "zipp_persona")]
pub struct Combined;

#[pymethods]
impl Combined {
    /// Options left `None` take zipp-core's defaults (`brag_k = 3`, VPRAG's defaults).
    #[new]
    #[pyo3(signature = (models, *, brag_k = None, temperature = None, default_budget = None, budgets = None,
                        token_budget = None))]
    fn new(
        py: Python<'_>,
        models: &Bound<'_, Models>,
        brag_k: Option<usize>,
        temperature: Option<f32>,
        default_budget: Option<usize>,
        budgets: Option<BTreeMap<String, usize>>,
        token_budget: Option<usize>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let mut spec = Personalizer::defaults("combined")?;
        if let MethodSpec::Combined { brag_k: k, temperature: t, default_budget: d, budgets: b, token_budget: tb } =
            &mut spec
        {
            *k = brag_k.unwrap_or(*k);
            *t = temperature.unwrap_or(*t);
            *d = default_budget.unwrap_or(*d);
            *b = budgets.unwrap_or_else(|| b.clone());
            *tb = token_budget.or(*tb);
        }
        let base = Personalizer::build(py, &models.get().inner, spec)?;
        Ok(PyClassInitializer::from(base).add_subclass(Combined))
    }
}

/// Benchmark helper (benches/python/bench_overhead.py): `n` calls of `personalize` in a
/// Rust loop, the same work a Python call does minus the bindings; nanoseconds per call.
#[pyfunction]
fn _bench_native(
    py: Python<'_>,
    personalizer: &Bound<'_, Personalizer>,
    persona: &Bound<'_, Persona>,
    prompt: String,
    n: usize,
) -> PyResult<Vec<u64>> {
    let personalizer = &personalizer.get().inner;
    let persona = &persona.get().inner;
    let request = Request::generate(prompt);
    zipp_call(py, || {
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let t0 = std::time::Instant::now();
            let out = personalizer.personalize(persona, &request)?;
            times.push(t0.elapsed().as_nanos() as u64);
            drop(std::hint::black_box(out));
        }
        Ok(times)
    })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Personalizer>()?;
    m.add_class::<Identity>()?;
    m.add_class::<PersonaOnly>()?;
    m.add_class::<Brag>()?;
    m.add_class::<Vprag>()?;
    m.add_class::<Combined>()?;
    m.add_function(wrap_pyfunction!(_bench_native, m)?)?;
    Ok(())
}
