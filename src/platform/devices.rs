//! Device nodes a sensor node uses: cameras, framebuffers, GPIO chips, with what sysfs says of them.

use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceNode {
    /// `camera`, `framebuffer` or `gpiochip`.
    pub kind: &'static str,
    pub path: String,
    /// The driver's name for it, and size/lines where sysfs gives them.
    pub detail: String,
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Nodes under `dev` whose names start with `prefix`, sorted by name.
fn nodes(dev: &Path, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dev)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.starts_with(prefix)
                && n[prefix.len()..].chars().all(|c| c.is_ascii_digit())
                && n.len() > prefix.len()
        })
        .collect();
    names.sort_by_key(|n| n[prefix.len()..].parse::<u32>().unwrap_or(u32::MAX));
    names
}

/// Lists cameras (`/dev/videoN`), framebuffers (`/dev/fbN`) and GPIO chips (`/dev/gpiochipN`),
/// described from `sys` (normally `/sys`). A camera's formats are capture's to tell
/// (`pipeline::doctor` adds them).
pub fn list_devices(dev: &Path, sys: &Path) -> Vec<DeviceNode> {
    let mut out = Vec::new();
    for n in nodes(dev, "video") {
        let name = read_trimmed(&sys.join("class/video4linux").join(&n).join("name"))
            .unwrap_or_else(|| "?".into());
        out.push(DeviceNode {
            kind: "camera",
            detail: name,
            path: dev.join(&n).display().to_string(),
        });
    }
    for n in nodes(dev, "fb") {
        let base = sys.join("class/graphics").join(&n);
        let name = read_trimmed(&base.join("name")).unwrap_or_else(|| "?".into());
        let size = read_trimmed(&base.join("virtual_size")).unwrap_or_else(|| "?".into());
        let bpp = read_trimmed(&base.join("bits_per_pixel")).unwrap_or_else(|| "?".into());
        out.push(DeviceNode {
            kind: "framebuffer",
            path: dev.join(&n).display().to_string(),
            detail: format!("{name}, {size}, {bpp} bpp"),
        });
    }
    for n in nodes(dev, "gpiochip") {
        let base = sys.join("bus/gpio/devices").join(&n);
        let label = read_trimmed(&base.join("label"))
            .or_else(|| read_trimmed(&sys.join("class/gpio").join(&n).join("label")));
        out.push(DeviceNode {
            kind: "gpiochip",
            path: dev.join(&n).display().to_string(),
            detail: label.unwrap_or_else(|| "?".into()),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_nodes_with_their_sysfs_names() {
        let scratch = crate::scratch::dir("devices");
        let root = scratch.path();
        let (dev, sys) = (root.join("dev"), root.join("sys"));
        for n in ["video10", "video2", "fb0", "gpiochip0", "videoX", "random"] {
            std::fs::create_dir_all(&dev).unwrap();
            std::fs::write(dev.join(n), b"").unwrap();
        }
        std::fs::create_dir_all(sys.join("class/video4linux/video2")).unwrap();
        std::fs::write(sys.join("class/video4linux/video2/name"), "vivid\n").unwrap();
        std::fs::create_dir_all(sys.join("class/graphics/fb0")).unwrap();
        std::fs::write(sys.join("class/graphics/fb0/name"), "bochs-drmdrmfb\n").unwrap();
        std::fs::write(sys.join("class/graphics/fb0/virtual_size"), "1280,800\n").unwrap();
        std::fs::write(sys.join("class/graphics/fb0/bits_per_pixel"), "32\n").unwrap();
        let list = list_devices(&dev, &sys);
        let paths: Vec<_> = list
            .iter()
            .map(|d| d.path.rsplit('/').next().unwrap().to_string())
            .collect();
        assert_eq!(paths, ["video2", "video10", "fb0", "gpiochip0"]);
        assert_eq!(list[0].detail, "vivid");
        assert_eq!(list[2].detail, "bochs-drmdrmfb, 1280,800, 32 bpp");
    }
}
