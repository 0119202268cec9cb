//! SAILERX in the registry: its parameters' check, what it reads, its builders.

use crossomics_encoders::ChromGroups;

use super::{Architecture, Sailerx, SailerxConfig, SailerxTranslator};
use crate::error::Result;
use crate::integrate::Integrator;
use crate::spec::{self, BuildContext, Checked, ModelSpec, Needs, ParamError};
use crate::translate::Translator;

impl ModelSpec for SailerxConfig {
    const INTEGRATES: bool = true;
    const TRANSLATES: bool = true;

    fn check(&self) -> Result<(), ParamError> {
        spec::check_latent_dim(self.latent_dim)?;
        spec::check_weights(&[
            ("invariance_weight", self.invariance_weight),
            ("alignment_weight", self.alignment_weight),
            ("recon_weight", self.recon_weight),
        ])?;
        spec::check_widths(&[
            ("encoder.hidden", &self.encoder.hidden),
            ("decoder.hidden", &self.decoder.hidden),
        ])?;
        if self.kl_period_epochs < 1 {
            return Err(ParamError::new("kl_period_epochs", "0 < 1"));
        }
        if self.architecture == Architecture::ChromSplit {
            self.chrom_split
                .check()
                .map_err(|e| ParamError::new("chrom_split", e.to_string()))?;
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(ParamError::new(
                "temperature",
                format!("{} is not a positive number", self.temperature),
            ));
        }
        Ok(())
    }

    fn needs(&self) -> Needs {
        Needs {
            single_modality_cells: !self.symmetric,
            ..Needs::default()
        }
    }

    fn integrator(this: &Checked<Self>, ctx: &BuildContext<'_>) -> Result<Box<dyn Integrator>> {
        Ok(Box::new(build(this, ctx)?))
    }

    fn translator(this: &Checked<Self>, ctx: &BuildContext<'_>) -> Result<Box<dyn Translator>> {
        let shapes = crate::spec::Shapes {
            n_rna_covariates: 0,
            ..ctx.shapes.clone()
        };
        let ctx = BuildContext {
            shapes: &shapes,
            ..*ctx
        };
        Ok(Box::new(SailerxTranslator::new(build(this, &ctx)?)?))
    }
}

/// The model for the context's peaks (a `chrom_split` model groups them by chromosome,
/// an `mlp` one counts them) and shapes.
pub fn build(cfg: &Checked<SailerxConfig>, ctx: &BuildContext<'_>) -> Result<Sailerx> {
    let groups = if cfg.architecture == Architecture::ChromSplit {
        ChromGroups::from_chromosomes(ctx.peak_chroms, cfg.chrom_split.min_peaks_per_group)
            .map_err(|e| {
                ParamError::new(
                    "chrom_split",
                    format!("grouping the peaks by chromosome: {e}"),
                )
            })?
    } else {
        ChromGroups::single(ctx.peak_chroms.len())
    };
    let s = ctx.shapes;
    if cfg.symmetric {
        Sailerx::symmetric(
            (**cfg).clone(),
            &groups,
            s.n_covariates,
            s.n_genes,
            s.n_rna_covariates,
            ctx.device,
        )
    } else {
        Sailerx::with_groups(
            (**cfg).clone(),
            &groups,
            s.n_covariates,
            s.n_pcs,
            ctx.device,
        )
    }
}
