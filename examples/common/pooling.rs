//! The ContextPool flags the examples share: where the layer sits (`--pool-placement`,
//! `--vit-pool-placement`) and what it reads (`--pool-features`).

use clap::ValueEnum;
use cubegrad::nn::{PoolFeatures, PoolPlacement};

/// Where ContextPool sits: [`PoolPlacement`] as a flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Placement {
    Input,
    Kv,
    AfterBlock,
    PerHead,
}

impl Placement {
    pub fn layer(self) -> PoolPlacement {
        match self {
            Placement::Input => PoolPlacement::Input,
            Placement::Kv => PoolPlacement::KeysValues,
            Placement::AfterBlock => PoolPlacement::AfterBlock,
            Placement::PerHead => PoolPlacement::PerHead,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Placement::Input => "input",
            Placement::Kv => "kv",
            Placement::AfterBlock => "after-block",
            Placement::PerHead => "per-head",
        }
    }
}

/// What ContextPool reads before attention: [`PoolFeatures`] as a flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Features {
    Normalized,
    Raw,
}

impl Features {
    pub fn layer(self) -> PoolFeatures {
        match self {
            Features::Normalized => PoolFeatures::Normalized,
            Features::Raw => PoolFeatures::Raw,
        }
    }
}
