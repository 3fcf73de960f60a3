//! A DRM/KMS display (/dev/dri/cardN) for boards whose kernel has no fbdev emulation: one
//! XRGB8888 dumb buffer, mapped once, set on a CRTC and drawn into in place.
//!
//! Kernel modesetting needs the card's master role: a desktop (Xorg, a Wayland compositor) holds
//! it while it runs. The CRTC's previous state is put back on drop, and the kernel frees the
//! buffer and framebuffer when the card is closed, so an early error leaks nothing.

use drm::buffer::{Buffer as _, DrmFourcc};
use drm::control::connector::{self, Interface, State};
use drm::control::dumbbuffer::{DumbBuffer, DumbMapping};
use drm::control::{crtc, framebuffer, ClipRect, Device as ControlDevice, Mode, ModeTypeFlags};
use drm::Device as _;
use image::RgbImage;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use tracing::debug;

use super::Display;
use crate::error::{Error, Result};

/// The open card node; the `drm` traits add the ioctls.
struct Card(File);

impl AsFd for Card {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}
impl drm::Device for Card {}
impl ControlDevice for Card {}

/// A connector and CRTC of a DRM card showing one dumb buffer.
pub struct DrmDisplay {
    card: Card,
    path: PathBuf,
    connector: connector::Handle,
    connector_name: String,
    crtc: crtc::Handle,
    /// The CRTC as it was before, put back on drop.
    saved: crtc::Info,
    buffer: DumbBuffer,
    fb: framebuffer::Handle,
    map: Option<DumbMapping<'static>>,
    width: u32,
    height: u32,
    pitch: usize,
    /// False once the driver said it needs no dirty calls (ENOSYS).
    dirty: bool,
}

/// The kernel's connector name, e.g. "HDMI-A-1", "Virtual-1" (as in /sys/class/drm/card0-*).
fn connector_name(interface: Interface, id: u32) -> String {
    format!("{}-{id}", interface.as_str())
}

/// Index of the named connector (any case) if given, else of the first connected one; the error
/// says what the card has.
fn choose_connector(
    connectors: &[(String, State)],
    wanted: Option<&str>,
) -> std::result::Result<usize, String> {
    let list = || {
        let all: Vec<String> = connectors
            .iter()
            .map(|(n, s)| {
                let s = match s {
                    State::Connected => "connected",
                    State::Disconnected => "disconnected",
                    State::Unknown => "unknown",
                };
                format!("{n} ({s})")
            })
            .collect();
        if all.is_empty() {
            "none".to_string()
        } else {
            all.join(", ")
        }
    };
    match wanted {
        Some(name) => match connectors
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(i) if connectors[i].1 != State::Disconnected => Ok(i),
            Some(_) => Err(format!(
                "connector {name} has nothing plugged in; connect the screen or name another \
                 connector (this card has: {})",
                list()
            )),
            None => Err(format!(
                "no connector named {name}; this card has: {}",
                list()
            )),
        },
        None => connectors
            .iter()
            .position(|(_, s)| *s == State::Connected)
            .ok_or_else(|| {
                format!(
                    "no connected screen (connectors: {}); plug one in, or name the connector \
                     in the board file's display.connector",
                    list()
                )
            }),
    }
}

/// XRGB8888 rows of `pitch` bytes (little-endian: B, G, R, X) from an RGB image.
fn pack_xrgb(view: &RgbImage, pitch: usize, out: &mut [u8]) {
    let row_bytes = view.width() as usize * 3;
    for (row, line) in view
        .as_raw()
        .chunks_exact(row_bytes)
        .zip(out.chunks_mut(pitch))
    {
        for (px, o) in row.chunks_exact(3).zip(line.chunks_exact_mut(4)) {
            o.copy_from_slice(&[px[2], px[1], px[0], 0]);
        }
    }
}

fn unpack_xrgb(raw: &[u8], width: u32, height: u32, pitch: usize) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let p = &raw[y as usize * pitch + x as usize * 4..][..4];
        image::Rgb([p[2], p[1], p[0]])
    })
}

impl DrmDisplay {
    /// Opens `card`, takes its master role and shows a black buffer on `connector` (or the first
    /// connected one) at its preferred mode.
    pub fn open(card: &Path, connector: Option<&str>) -> Result<Self> {
        let dev = |reason: String| Error::device(card.display(), reason);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(card)
            .map_err(|e| {
                dev(match e.kind() {
                    ErrorKind::PermissionDenied => format!(
                        "cannot open the DRM card ({e}); add this user to the video group \
                         (`sudo usermod -aG video $USER`, then log in again)"
                    ),
                    _ => format!(
                        "cannot open the DRM card ({e}). Check the board file's display device \
                         and `ls /dev/dri`; with no card there, use a framebuffer display \
                         (`hgpose doctor` lists them)"
                    ),
                })
            })?;
        let c = Card(file);
        let driver = c
            .get_driver()
            .map_err(|e| dev(format!("not a DRM device ({e}); use a /dev/dri/cardN node")))?;
        let res = c.resource_handles().map_err(|e| {
            dev(format!(
                "the card has no display outputs ({e}); a render node (renderD*) cannot \
                 display, use /dev/dri/cardN"
            ))
        })?;
        c.acquire_master_lock().map_err(|e| {
            dev(format!(
                "another program controls this card's display ({e}), e.g. a desktop session; \
                 stop it, or use kind = \"framebuffer\" (the fbdev display) instead"
            ))
        })?;
        // Probing (as master) fills in the modes on kernels without fbdev, where nobody else has.
        let infos = res
            .connectors()
            .iter()
            .map(|&h| c.get_connector(h, true))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| dev(format!("cannot read the connectors ({e})")))?;
        let names: Vec<(String, State)> = infos
            .iter()
            .map(|i| (connector_name(i.interface(), i.interface_id()), i.state()))
            .collect();
        let pick = choose_connector(&names, connector).map_err(dev)?;
        let (conn, name) = (&infos[pick], names[pick].0.clone());
        let mode: Mode = *conn
            .modes()
            .iter()
            .find(|m| m.mode_type().contains(ModeTypeFlags::PREFERRED))
            .or(conn.modes().first())
            .ok_or_else(|| {
                dev(format!(
                    "{name} reports no modes; check the cable and the screen"
                ))
            })?;
        let encoders = conn
            .current_encoder()
            .into_iter()
            .chain(conn.encoders().iter().copied());
        let crtc = encoders
            .filter_map(|e| c.get_encoder(e).ok())
            .find_map(|e| {
                e.crtc()
                    .or(res.filter_crtcs(e.possible_crtcs()).first().copied())
            })
            .ok_or_else(|| dev(format!("no CRTC can drive {name}")))?;
        let saved = c
            .get_crtc(crtc)
            .map_err(|e| dev(format!("cannot read the CRTC ({e})")))?;

        let (w, h) = mode.size();
        let (width, height) = (w as u32, h as u32);
        let buffer = c
            .create_dumb_buffer((width, height), DrmFourcc::Xrgb8888, 32)
            .map_err(|e| {
                dev(format!(
                    "cannot allocate a {width}x{height} dumb buffer ({e})"
                ))
            })?;
        let fb = c
            .add_framebuffer(&buffer, 24, 32)
            .map_err(|e| dev(format!("the driver refused an XRGB8888 framebuffer ({e})")))?;
        // The mapping borrows the buffer only to tie lifetimes (DumbBuffer is a Copy of ids): a
        // leaked copy gives a 'static mapping that lives exactly as long as this display.
        let pitch = buffer.pitch() as usize;
        let map = c
            .map_dumb_buffer(Box::leak(Box::new(buffer)))
            .map_err(|e| dev(format!("cannot map the dumb buffer ({e})")))?;
        c.set_crtc(crtc, Some(fb), (0, 0), &[conn.handle()], Some(mode))
            .map_err(|e| dev(format!("cannot set mode {width}x{height} on {name} ({e})")))?;
        debug!(
            "drm {}: driver {:?}, {name}, crtc {crtc:?}",
            card.display(),
            driver.name()
        );
        Ok(DrmDisplay {
            card: c,
            path: card.to_path_buf(),
            connector: conn.handle(),
            connector_name: name,
            crtc,
            saved,
            buffer,
            fb,
            map: Some(map),
            width,
            height,
            pitch,
            dirty: true,
        })
    }

    /// The framebuffer id this display scans out (for checks through the DRM API).
    pub fn framebuffer_id(&self) -> u32 {
        self.fb.into()
    }

    /// The CRTC id driving the screen.
    pub fn crtc_id(&self) -> u32 {
        self.crtc.into()
    }

    /// Reads the buffer back as RGB (for tests and screenshots).
    pub fn read_rgb(&self) -> Result<RgbImage> {
        match &self.map {
            Some(map) => Ok(unpack_xrgb(map, self.width, self.height, self.pitch)),
            None => Err(Error::device(
                self.path.display(),
                "the buffer is not mapped",
            )),
        }
    }
}

impl Display for DrmDisplay {
    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn show(&mut self, view: &RgbImage) -> Result<()> {
        super::check_view_size(view, (self.width, self.height), "DRM display", &self.path)?;
        if let Some(map) = self.map.as_mut() {
            pack_xrgb(view, self.pitch, map);
        }
        if self.dirty {
            let all = ClipRect::new(0, 0, self.width as u16, self.height as u16);
            match self.card.dirty_framebuffer(self.fb, &[all]) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => self.dirty = false,
                Err(e) => {
                    return Err(Error::device(
                        self.path.display(),
                        format!("dirty-framebuffer update failed ({e})"),
                    ))
                }
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "drm {} {} {}x{} XRGB8888",
            self.path.display(),
            self.connector_name,
            self.width,
            self.height
        )
    }
}

impl Drop for DrmDisplay {
    fn drop(&mut self) {
        drop(self.map.take());
        let s = &self.saved;
        let conns = if s.framebuffer().is_some() {
            vec![self.connector]
        } else {
            vec![]
        };
        if let Err(e) =
            self.card
                .set_crtc(self.crtc, s.framebuffer(), s.position(), &conns, s.mode())
        {
            debug!(
                "drm {}: previous CRTC state not restored ({e})",
                self.path.display()
            );
        }
        self.card.destroy_framebuffer(self.fb).ok();
        self.card.destroy_dumb_buffer(self.buffer).ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(list: &[(&str, State)]) -> Vec<(String, State)> {
        list.iter().map(|(n, s)| (n.to_string(), *s)).collect()
    }

    #[test]
    fn connector_names_follow_the_kernel() {
        // As the kernel names them in /sys/class/drm/card0-*.
        assert_eq!(connector_name(Interface::HDMIA, 1), "HDMI-A-1");
        assert_eq!(connector_name(Interface::Virtual, 1), "Virtual-1");
        assert_eq!(connector_name(Interface::DSI, 2), "DSI-2");
    }

    #[test]
    fn the_first_connected_connector_or_the_named_one_is_chosen() {
        let cards = named(&[
            ("HDMI-A-1", State::Disconnected),
            ("DSI-1", State::Connected),
            ("HDMI-A-2", State::Connected),
        ]);
        assert_eq!(choose_connector(&cards, None), Ok(1));
        assert_eq!(choose_connector(&cards, Some("hdmi-a-2")), Ok(2));
        let err = choose_connector(&cards, Some("HDMI-A-1")).unwrap_err();
        assert!(err.contains("nothing plugged in"), "{err}");
        let err = choose_connector(&cards, Some("VGA-1")).unwrap_err();
        assert!(
            err.contains("VGA-1") && err.contains("DSI-1 (connected)"),
            "{err}"
        );
        let none = named(&[("HDMI-A-1", State::Disconnected)]);
        let err = choose_connector(&none, None).unwrap_err();
        assert!(
            err.contains("no connected screen") && err.contains("HDMI-A-1 (disconnected)"),
            "{err}"
        );
    }

    #[test]
    fn pixels_are_packed_bgrx_and_honour_the_pitch() {
        let view = RgbImage::from_fn(3, 2, |x, y| image::Rgb([x as u8 * 10, y as u8 * 20, 7]));
        let pitch = 16; // wider than 3 pixels * 4 bytes, as drivers align lines
        let mut raw = vec![0xEE; pitch * 2];
        pack_xrgb(&view, pitch, &mut raw);
        assert_eq!(&raw[4..8], &[7, 0, 10, 0]); // (1, 0): B G R X
        assert_eq!(&raw[pitch + 8..pitch + 12], &[7, 20, 20, 0]); // (2, 1)
        assert_eq!(
            &raw[12..16],
            &[0xEE; 4],
            "padding past the line must stay untouched"
        );
        assert_eq!(unpack_xrgb(&raw, 3, 2, pitch), view);
    }

    #[test]
    fn a_missing_card_is_named() {
        let err = DrmDisplay::open(Path::new("/dev/dri/card-none"), None)
            .err()
            .unwrap();
        let text = err.to_string();
        assert!(
            text.contains("/dev/dri/card-none")
                && text.contains("ls /dev/dri")
                && text.contains("hgpose doctor"),
            "{text}"
        );
    }

    #[test]
    fn a_regular_file_is_not_a_drm_device() {
        let file = crate::scratch::file("notdrm");
        let path = file.path().to_path_buf();
        std::fs::write(&path, b"x").unwrap();
        let err = DrmDisplay::open(&path, None).err().unwrap();
        assert!(err.to_string().contains("not a DRM device"), "{err}");
    }
}
