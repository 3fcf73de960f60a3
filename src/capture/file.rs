//! Frames from image files (PNG, JPEG), decoded by the `image` crate.

use image::RgbImage;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Reads and decodes an image file into RGB, naming the file in every error.
pub fn load_image(path: &Path) -> Result<RgbImage> {
    let err = |reason: String| Error::Image {
        path: path.to_path_buf(),
        reason,
    };
    let reader = image::ImageReader::open(path)
        .map_err(|e| err(format!("cannot open it ({e})")))?
        .with_guessed_format()
        .map_err(|e| err(format!("cannot read it ({e})")))?;
    if reader.format().is_none() {
        return Err(err("not a recognised image format".into()));
    }
    let image = reader
        .decode()
        .map_err(|e| err(format!("it is corrupt or truncated ({e})")))?;
    if image.width() == 0 || image.height() == 0 {
        return Err(err("it has no pixels".into()));
    }
    Ok(image.into_rgb8())
}

/// Loads the images named by `paths`: image files, or folders of them (in name order).
pub fn load_images(paths: &[PathBuf]) -> Result<Vec<RgbImage>> {
    let mut frames = Vec::new();
    for path in paths {
        if path.is_dir() {
            for p in crate::capture::folder::list_images(path)? {
                frames.push(load_image(&p)?);
            }
        } else {
            frames.push(load_image(path)?);
        }
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_corrupt_files_are_named_errors() {
        let scratch = crate::scratch::dir("capture");
        let dir = scratch.path();
        let missing = dir.join("missing.png");
        let err = load_image(&missing).unwrap_err().to_string();
        assert!(err.contains("missing.png"), "{err}");

        let corrupt = dir.join("corrupt.png");
        let mut bytes = Vec::new();
        RgbImage::new(16, 16)
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .unwrap();
        bytes.truncate(bytes.len() / 2);
        std::fs::write(&corrupt, &bytes).unwrap();
        let err = load_image(&corrupt).unwrap_err().to_string();
        assert!(
            err.contains("corrupt.png") && err.contains("corrupt"),
            "{err}"
        );

        let text = dir.join("notes.jpg");
        std::fs::write(&text, b"hello").unwrap();
        assert!(load_image(&text).is_err());

        let good = dir.join("good.png");
        RgbImage::new(3, 2).save(&good).unwrap();
        assert_eq!(load_image(&good).unwrap().dimensions(), (3, 2));
    }
}
