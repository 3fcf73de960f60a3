//! A Linux framebuffer (/dev/fbN: HDMI through the DRM driver's fbdev emulation, or a panel with
//! an fbdev driver).
//!
//! The device's pixel layout is read from the kernel (`FBIOGET_VSCREENINFO` / `FBIOGET_FSCREENINFO`)
//! and every view is packed with those bitfields, so RGB565, RGB888, XRGB8888, BGR orders and
//! odd line strides all work without a table of known formats. Pixels are written with `pwrite`
//! (one call per frame, from a reused buffer) rather than `mmap`: no unsafe aliasing of device
//! memory, and the cost is one copy of a few megabytes at most.

use image::RgbImage;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::Display;
use crate::error::{Error, Result};

const FBIOGET_VSCREENINFO: u32 = 0x4600;
const FBIOGET_FSCREENINFO: u32 = 0x4602;

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct FbBitfield {
    offset: u32,
    length: u32,
    msb_right: u32,
}

/// `struct fb_var_screeninfo` from <linux/fb.h>.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct FbVarScreeninfo {
    xres: u32,
    yres: u32,
    xres_virtual: u32,
    yres_virtual: u32,
    xoffset: u32,
    yoffset: u32,
    bits_per_pixel: u32,
    grayscale: u32,
    red: FbBitfield,
    green: FbBitfield,
    blue: FbBitfield,
    transp: FbBitfield,
    nonstd: u32,
    activate: u32,
    height: u32,
    width: u32,
    accel_flags: u32,
    timings: [u32; 11],
    reserved: [u32; 4],
}

/// `struct fb_fix_screeninfo` from <linux/fb.h> (`unsigned long` fields follow the target).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct FbFixScreeninfo {
    id: [u8; 16],
    smem_start: libc::c_ulong,
    smem_len: u32,
    kind: u32,
    type_aux: u32,
    visual: u32,
    xpanstep: u16,
    ypanstep: u16,
    ywrapstep: u16,
    line_length: u32,
    mmio_start: libc::c_ulong,
    mmio_len: u32,
    accel: u32,
    capabilities: u16,
    reserved: [u16; 2],
}

/// How one pixel is laid out in device memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelLayout {
    pub bytes_per_pixel: usize,
    /// (offset, length) in bits of red, green and blue within the little-endian pixel word.
    pub red: (u32, u32),
    pub green: (u32, u32),
    pub blue: (u32, u32),
}

impl PixelLayout {
    pub const XRGB8888: PixelLayout = PixelLayout {
        bytes_per_pixel: 4,
        red: (16, 8),
        green: (8, 8),
        blue: (0, 8),
    };
    pub const RGB565: PixelLayout = PixelLayout {
        bytes_per_pixel: 2,
        red: (11, 5),
        green: (5, 6),
        blue: (0, 5),
    };

    fn channel(value: u8, (offset, length): (u32, u32)) -> u32 {
        if length == 0 {
            return 0;
        }
        let v = if length >= 8 {
            (value as u32) << (length - 8)
        } else {
            (value as u32) >> (8 - length)
        };
        v << offset
    }

    fn unchannel(word: u32, (offset, length): (u32, u32)) -> u8 {
        if length == 0 {
            return 0;
        }
        let v = (word >> offset) & ((1u32 << length.min(31)) - 1);
        if length >= 8 {
            (v >> (length - 8)) as u8
        } else {
            // Replicate the high bits so full intensity reads back as 255.
            ((v << (8 - length)) | (v >> (2 * length).saturating_sub(8).min(length))) as u8
        }
    }

    /// Packs one RGB pixel into `out` (little-endian, `bytes_per_pixel` bytes).
    pub fn pack(&self, rgb: [u8; 3], out: &mut [u8]) {
        let word = Self::channel(rgb[0], self.red)
            | Self::channel(rgb[1], self.green)
            | Self::channel(rgb[2], self.blue);
        out.copy_from_slice(&word.to_le_bytes()[..self.bytes_per_pixel]);
    }

    pub fn unpack(&self, bytes: &[u8]) -> [u8; 3] {
        let mut word = [0u8; 4];
        word[..self.bytes_per_pixel].copy_from_slice(&bytes[..self.bytes_per_pixel]);
        let word = u32::from_le_bytes(word);
        [
            Self::unchannel(word, self.red),
            Self::unchannel(word, self.green),
            Self::unchannel(word, self.blue),
        ]
    }
}

/// An open framebuffer device.
pub struct Framebuffer {
    file: File,
    path: PathBuf,
    width: u32,
    height: u32,
    line_length: usize,
    /// Byte offset of the visible area's first pixel (panning).
    origin: u64,
    layout: PixelLayout,
    id: String,
    packed: Vec<u8>,
}

fn ioctl<T>(file: &File, request: u32, out: &mut T) -> std::io::Result<()> {
    // SAFETY: `out` is a #[repr(C)] mirror of the struct the kernel fills for `request`.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), request as _, out as *mut T) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl Framebuffer {
    pub fn open(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| {
                Error::device(
                    &name,
                    format!(
                        "cannot open the framebuffer ({e}). Check the board file's display \
                         device, `ls /dev/fb*` (`hgpose doctor` lists them) and that this user is \
                         in the video group"
                    ),
                )
            })?;
        let mut var = FbVarScreeninfo::default();
        let mut fix = FbFixScreeninfo::default();
        ioctl(&file, FBIOGET_VSCREENINFO, &mut var)
            .and_then(|_| ioctl(&file, FBIOGET_FSCREENINFO, &mut fix))
            .map_err(|e| Error::device(&name, format!("not a framebuffer device ({e})")))?;
        let bpp = var.bits_per_pixel;
        if !matches!(bpp, 16 | 24 | 32) || var.grayscale != 0 {
            return Err(Error::device(
                &name,
                format!(
                    "{bpp} bits per pixel{} is not supported; set 16, 24 or 32 bpp (e.g. `fbset -depth 32`)",
                    if var.grayscale != 0 { " greyscale" } else { "" }
                ),
            ));
        }
        let layout = PixelLayout {
            bytes_per_pixel: bpp as usize / 8,
            red: (var.red.offset, var.red.length),
            green: (var.green.offset, var.green.length),
            blue: (var.blue.offset, var.blue.length),
        };
        let line_length = fix.line_length as usize;
        if line_length < var.xres as usize * layout.bytes_per_pixel || var.xres == 0 {
            return Err(Error::device(
                &name,
                format!(
                    "inconsistent geometry: {}x{} at {bpp} bpp with {line_length}-byte lines",
                    var.xres, var.yres
                ),
            ));
        }
        let origin = var.yoffset as u64 * line_length as u64
            + var.xoffset as u64 * layout.bytes_per_pixel as u64;
        let id = String::from_utf8_lossy(&fix.id)
            .trim_end_matches('\0')
            .to_string();
        Ok(Framebuffer {
            file,
            path: path.to_path_buf(),
            width: var.xres,
            height: var.yres,
            line_length,
            origin,
            layout,
            id,
            packed: vec![0; line_length * var.yres as usize],
        })
    }

    pub fn layout(&self) -> PixelLayout {
        self.layout
    }

    /// Reads the visible screen back as RGB (for tests and screenshots).
    pub fn read_rgb(&self) -> Result<RgbImage> {
        let mut raw = vec![0u8; self.packed.len()];
        self.file
            .read_exact_at(&mut raw, self.origin)
            .map_err(|e| Error::device(self.path.display(), format!("read back failed ({e})")))?;
        let bpp = self.layout.bytes_per_pixel;
        Ok(RgbImage::from_fn(self.width, self.height, |x, y| {
            let at = y as usize * self.line_length + x as usize * bpp;
            image::Rgb(self.layout.unpack(&raw[at..at + bpp]))
        }))
    }
}

impl Display for Framebuffer {
    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn show(&mut self, view: &RgbImage) -> Result<()> {
        super::check_view_size(view, (self.width, self.height), "framebuffer", &self.path)?;
        let bpp = self.layout.bytes_per_pixel;
        let row_bytes = self.width as usize * 3;
        for (y, row) in view.as_raw().chunks_exact(row_bytes).enumerate() {
            let line = &mut self.packed[y * self.line_length..][..self.width as usize * bpp];
            for (px, out) in row.chunks_exact(3).zip(line.chunks_exact_mut(bpp)) {
                self.layout.pack([px[0], px[1], px[2]], out);
            }
        }
        self.file
            .write_all_at(&self.packed, self.origin)
            .map_err(|e| Error::device(self.path.display(), format!("write failed ({e})")))
    }

    fn describe(&self) -> String {
        format!(
            "framebuffer {} ({}, {}x{}, {} bpp)",
            self.path.display(),
            self.id,
            self.width,
            self.height,
            self.layout.bytes_per_pixel * 8
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structs_match_the_kernel_abi_sizes() {
        // Sizes from <linux/fb.h>: 160 bytes everywhere; 80 (64-bit) or 68 (32-bit) bytes.
        assert_eq!(std::mem::size_of::<FbVarScreeninfo>(), 160);
        let fix = if cfg!(target_pointer_width = "64") {
            80
        } else {
            68
        };
        assert_eq!(std::mem::size_of::<FbFixScreeninfo>(), fix);
    }

    #[test]
    fn xrgb8888_packs_little_endian_bgrx_bytes() {
        let mut out = [0u8; 4];
        PixelLayout::XRGB8888.pack([0x11, 0x22, 0x33], &mut out);
        assert_eq!(out, [0x33, 0x22, 0x11, 0x00]);
        assert_eq!(PixelLayout::XRGB8888.unpack(&out), [0x11, 0x22, 0x33]);
    }

    #[test]
    fn rgb565_packs_top_bits_and_reads_full_white_back() {
        let mut out = [0u8; 2];
        PixelLayout::RGB565.pack([255, 0, 0], &mut out);
        assert_eq!(u16::from_le_bytes(out), 0xF800);
        PixelLayout::RGB565.pack([0, 255, 0], &mut out);
        assert_eq!(u16::from_le_bytes(out), 0x07E0);
        PixelLayout::RGB565.pack([255, 255, 255], &mut out);
        assert_eq!(PixelLayout::RGB565.unpack(&out), [255, 255, 255]);
        PixelLayout::RGB565.pack([0x80, 0x40, 0x20], &mut out);
        let back = PixelLayout::RGB565.unpack(&out);
        for (a, b) in back.iter().zip([0x80u8, 0x40, 0x20]) {
            assert!((*a as i32 - b as i32).abs() <= 8, "{back:?}");
        }
    }

    #[test]
    fn a_bgr_layout_swaps_channels() {
        let bgr = PixelLayout {
            bytes_per_pixel: 3,
            red: (0, 8),
            green: (8, 8),
            blue: (16, 8),
        };
        let mut out = [0u8; 3];
        bgr.pack([1, 2, 3], &mut out);
        assert_eq!(out, [1, 2, 3]);
        assert_eq!(bgr.unpack(&out), [1, 2, 3]);
    }

    #[test]
    fn a_missing_device_is_named() {
        let err = Framebuffer::open(Path::new("/dev/fb-none")).err().unwrap();
        let text = err.to_string();
        assert!(
            text.contains("/dev/fb-none") && text.contains("hgpose doctor"),
            "{text}"
        );
    }

    #[test]
    fn a_regular_file_is_not_a_framebuffer() {
        let file = crate::scratch::file("notfb");
        let path = file.path().to_path_buf();
        std::fs::write(&path, b"x").unwrap();
        let err = Framebuffer::open(&path).err().unwrap();
        assert!(err.to_string().contains("not a framebuffer"), "{err}");
    }
}
