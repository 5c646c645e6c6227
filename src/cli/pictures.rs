//! What the picture-making subcommands share: a checkpoint's metadata for titles.

use std::collections::HashMap;
use std::path::Path;

use descent::model::Checkpoint;

/// The checkpoint's `__metadata__` (empty when it has none or cannot be read: the checkpoint
/// itself was already loaded, so this only decorates titles).
pub fn checkpoint_metadata(path: &Path) -> HashMap<String, String> {
    let Ok(bytes) = std::fs::read(path) else {
        return HashMap::new();
    };
    safetensors::SafeTensors::read_metadata(&bytes)
        .ok()
        .and_then(|(_, header)| header.metadata().clone())
        .unwrap_or_default()
}

/// "model · dataset · optimizer" for a figure's title, from what the checkpoint records.
pub fn checkpoint_title(ck: &Checkpoint, path: &Path) -> String {
    let meta = checkpoint_metadata(path);
    let dataset = ck.dataset.map_or("dataset not recorded", |d| d.name());
    let mut parts = vec![ck.spec.describe(), dataset.to_owned()];
    // Today's checkpoints do not record the optimizer; show it once they do.
    if let Some(opt) = meta.get("optimizer") {
        parts.push(opt.clone());
    }
    parts.join(" · ")
}
