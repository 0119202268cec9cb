//! The model registry: one line per model kind. The `[model]` table's `kind` picks the
//! variant; its other keys are that model's [`ModelSpec`] config. Everything that
//! depends on the kind (its name, which families it belongs to, the check, the inputs it
//! needs, the builders) is derived here, so adding a model is its module plus one line in
//! the `models!` list below.

use serde::{Deserialize, Serialize};

use crate::babel::{BabelConfig, CrossmpConfig};
use crate::baselines::{KnnRegressionConfig, MeanConfig, RidgeConfig};
use crate::error::Result;
use crate::integrate::Integrator;
use crate::sailerx::SailerxConfig;
use crate::spec::{BuildContext, Checked, ModelSpec, Needs, ParamError};
use crate::translate::Translator;

macro_rules! models {
    ($($(#[$doc:meta])* $kind:literal => $variant:ident($config:ty),)+) => {
        /// `[model]`: one variant per model kind (`kind = "..."`).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind")]
        pub enum ModelConfig {
            $($(#[$doc])* #[serde(rename = $kind)] $variant($config),)+
        }

        impl ModelConfig {
            /// Every kind, in registry order.
            pub const KINDS: &'static [&'static str] = &[$($kind),+];

            /// The `kind` key's value.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $kind,)+
                }
            }

            /// Whether the kind integrates (embeds both modalities, scored as integration).
            pub fn integrates(&self) -> bool {
                match self {
                    $(Self::$variant(_) => <$config as ModelSpec>::INTEGRATES,)+
                }
            }

            /// Whether the kind translates.
            pub fn translates(&self) -> bool {
                match self {
                    $(Self::$variant(_) => <$config as ModelSpec>::TRANSLATES,)+
                }
            }

            /// Whether the kind is a baseline ([`ModelSpec::BASELINE`]).
            pub fn is_baseline(&self) -> bool {
                match self {
                    $(Self::$variant(_) => <$config as ModelSpec>::BASELINE,)+
                }
            }

            /// The model's own check of its parameters.
            pub fn checked(&self) -> Result<Checked<Self>, ParamError> {
                match self {
                    $(Self::$variant(c) => c.checked().map(|c| c.map(Self::$variant)),)+
                }
            }

            /// The prepared inputs the model reads.
            pub fn needs(&self) -> Needs {
                match self {
                    $(Self::$variant(c) => c.needs(),)+
                }
            }

            /// Deserializes the parameters of a `[model]` table of kind `kind` on their
            /// own (serde's tagged enums hide the key path of an error inside them):
            /// `Err((path, message))`; `Ok` also for an unknown kind, which the main pass
            /// reports with the list of kinds.
            pub fn check_table(kind: &str, params: toml::Table) -> Result<(), (String, String)> {
                fn parse<T: serde::de::DeserializeOwned>(
                    t: toml::Table,
                ) -> Result<(), (String, String)> {
                    serde_path_to_error::deserialize::<_, T>(toml::Value::Table(t))
                        .map(drop)
                        .map_err(|e| (e.path().to_string(), e.into_inner().to_string()))
                }
                match kind {
                    $($kind => parse::<$config>(params),)+
                    _ => Ok(()),
                }
            }
        }

        impl Checked<ModelConfig> {
            /// The integrator of these parameters.
            pub fn integrator(&self, ctx: &BuildContext<'_>) -> Result<Box<dyn Integrator>> {
                match &**self {
                    $(ModelConfig::$variant(c) => {
                        <$config as ModelSpec>::integrator(&c.checked().map_err(param)?, ctx)
                    })+
                }
            }

            /// The translator of these parameters.
            pub fn translator(&self, ctx: &BuildContext<'_>) -> Result<Box<dyn Translator>> {
                match &**self {
                    $(ModelConfig::$variant(c) => {
                        <$config as ModelSpec>::translator(&c.checked().map_err(param)?, ctx)
                    })+
                }
            }
        }
    };
}

fn param(e: ParamError) -> crate::ModelError {
    e.into()
}

models! {
    /// SAILERX integrator (ATAC VAE + invariance + structural similarity to RNA PCA);
    /// with `task = "translation"`, a translator through its latent space.
    "sailerx" => Sailerx(SailerxConfig),
    /// BABEL translator: RNA and chromosome-split ATAC autoencoders sharing one latent.
    "babel" => Babel(BabelConfig),
    /// CrossMP: BABEL with the gene-activity branch of the ATAC encoder.
    "crossmp" => Crossmp(CrossmpConfig),
    /// Ridge regression from the source PCA/LSI to the target (baseline).
    "ridge" => Ridge(RidgeConfig),
    /// kNN regression in the source PCA/LSI (baseline).
    "knn_regression" => KnnRegression(KnnRegressionConfig),
    /// The per-feature mean of the training cells, whatever the source (trivial baseline).
    "mean" => Mean(MeanConfig),
}
