//! One position of a cascade: a stage and its variants (int8, pruned), one of them active.
//!
//! A manifest's `[variants]` table names sibling manifests of the same stage. They are loaded
//! with it and must be drop-in replacements (same stage, task, classes, inputs and exit), so
//! the governor can switch between them at run time without anything else changing.

use super::stage::{read_file, Reader, Stage};
use super::{ModelError, Variant};
use std::path::Path;

/// One position of the cascade: its model's variants (the manifest's own first, then those its
/// `[variants]` table names), one of them active.
pub struct Slot {
    variants: Vec<Stage>,
    active: usize,
}

impl Slot {
    /// A stage and its variants, the first active.
    pub fn new(variants: Vec<Stage>) -> Slot {
        assert!(!variants.is_empty(), "a slot holds at least its own stage");
        Slot { variants, active: 0 }
    }

    /// Load a manifest file and every variant it names (relative to it).
    pub fn load_file(manifest_path: &Path) -> Result<Slot, ModelError> {
        Slot::load_with(manifest_path, &read_file)
    }

    /// Load a manifest and its variants through `read`.
    pub fn load_with(manifest_path: &Path, read: Reader) -> Result<Slot, ModelError> {
        let first = Stage::load_with(manifest_path, read)?;
        let dir = manifest_path.parent().unwrap_or(Path::new("."));
        let mut variants = vec![first];
        for (variant, path) in variants[0].manifest.variants.clone() {
            let stage = Stage::load_with(&dir.join(&path), read)?;
            Self::check_variant(&variants[0], &stage, variant)?;
            variants.push(stage);
        }
        Ok(Slot::new(variants))
    }

    /// A variant must be a drop-in replacement: same stage, task, classes and inputs, and an
    /// `[exit]` exactly when its parent has one.
    fn check_variant(parent: &Stage, v: &Stage, listed_as: Variant) -> Result<(), ModelError> {
        let (p, m) = (&parent.manifest, &v.manifest);
        let problem = if m.variant != listed_as {
            Some(format!(
                "is listed as the `{listed_as}` variant of `{}` but says `variant = \"{}\"`",
                p.name, m.variant
            ))
        } else if m.stage != p.stage || m.task != p.task || m.outputs.classes != p.outputs.classes {
            Some(format!("is a variant of `{}` but its stage, task or classes differ", p.name))
        } else if m.inputs.features != p.inputs.features || m.inputs.raw != p.inputs.raw {
            Some(format!("is a variant of `{}` but takes other inputs; a variant must take the same ones", p.name))
        } else if m.exit.is_some() != p.exit.is_some() {
            // Switching to it would turn an exit stage into a last stage or back.
            let (own, parent) = if m.exit.is_some() { ("has an", "none") } else { ("has no", "one") };
            Some(format!("is a variant of `{}` but {own} [exit] while its parent has {parent}", p.name))
        } else {
            None
        };
        problem.map_or(Ok(()), |msg| Err(ModelError::at(&m.origin, msg)))
    }

    /// The variant that runs.
    pub fn active(&self) -> &Stage {
        &self.variants[self.active]
    }

    pub(super) fn active_mut(&mut self) -> &mut Stage {
        &mut self.variants[self.active]
    }

    /// Make `variant` the active one; `false` (and no change) if this position has no such
    /// variant.
    pub(super) fn select(&mut self, variant: Variant) -> bool {
        match self.variants.iter().position(|s| s.manifest.variant == variant) {
            Some(i) => {
                self.active = i;
                true
            }
            None => false,
        }
    }

    /// Every variant loaded for this position, the manifest's own first.
    pub fn variants(&self) -> &[Stage] {
        &self.variants
    }

    /// The same, to run them (`biofeedd eval` scores every variant alone).
    pub fn variants_mut(&mut self) -> &mut [Stage] {
        &mut self.variants
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fusion::fixtures::{bundled, stage_from, with_line};

    #[test]
    fn a_variant_with_other_inputs_is_refused() {
        let parent = stage_from(&bundled("stress-s1.toml"), "stress-s1.onnx");
        let other =
            stage_from(&with_line(&bundled("stress-s0.toml"), "variant", "variant = \"int8\""), "stress-s0.onnx");
        let err = Slot::check_variant(&parent, &other, Variant::Int8).unwrap_err().to_string();
        assert!(err.contains("is a variant of `stress-s1` but its stage, task or classes differ"), "{err}");
        let int8 = bundled("stress-s1-int8.toml");
        let text: Vec<&str> = int8.lines().filter(|l| *l != "[exit]" && !l.starts_with("confidence =")).collect();
        let no_exit = stage_from(&text.join("\n"), "stress-s1-int8.onnx");
        let err = Slot::check_variant(&parent, &no_exit, Variant::Int8).unwrap_err().to_string();
        assert!(err.contains("has no [exit] while its parent has one"), "{err}");
        let err = Slot::check_variant(&parent, &other, Variant::Pruned).unwrap_err().to_string();
        assert!(err.contains("listed as the `pruned` variant of `stress-s1` but says `variant = \"int8\"`"), "{err}");
    }

    #[test]
    fn selecting_a_variant_the_slot_lacks_changes_nothing() {
        let mut slot = crate::fusion::builtin::slot("stress-s2.toml").unwrap();
        assert!(slot.select(Variant::Int8));
        assert_eq!(slot.active().manifest.name, "stress-s2-int8");
        assert!(!slot.select(Variant::Pruned));
        assert_eq!(slot.active().manifest.name, "stress-s2-int8");
    }
}
