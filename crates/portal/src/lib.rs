//! The CrossMP web portal (`crossomics serve`): upload single-cell data of one modality,
//! get the other predicted by a trained translator.
//!
//! Not built yet: it depends on saved translators that apply to new data. This crate
//! holds its place in the workspace so that the layout in `docs/architecture.md` is true.
