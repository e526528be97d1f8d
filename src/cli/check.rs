//! `biofeedd check`: validate a config and the models it names, then say what would run.

use biofeedd::config::Config;
use biofeedd::daemon;
use std::path::Path;

pub fn check(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let channels = daemon::sensor_channels(&config)?;
    let fusion = daemon::load_fusion(&config, &channels)?;
    let m = &fusion.stage().manifest;
    let names: Vec<String> = fusion
        .slots()
        .iter()
        .map(|slot| {
            let others: Vec<String> = slot.variants()[1..].iter().map(|v| v.manifest.variant.to_string()).collect();
            let a = &slot.active().manifest;
            match others.is_empty() {
                true => format!("`{}` {}", a.name, a.variant),
                false => format!("`{}` {} (also {})", a.name, a.variant, others.join(", ")),
            }
        })
        .collect();
    super::out::print(&format!(
        "{}: OK — hub `{}`, {} sensor(s), subjects {}, {} {} (last stage: {} features{}, classes {})\n",
        path.display(),
        config.hub.id,
        config.sensors.len(),
        config.subjects().join(", "),
        if names.len() == 1 { "model" } else { "cascade" },
        names.join(" → "),
        m.inputs.features.len(),
        m.inputs.raw.as_ref().map_or(String::new(), |r| format!(" + raw {}×{}", r.channels.len(), r.length)),
        m.outputs.classes.join("/"),
    ))
}
