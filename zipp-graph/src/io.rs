//! Edge-file loaders (in progress).
