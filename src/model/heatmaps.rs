//! Per-joint heatmaps in one fixed layout (joint, row, column), whatever layout the model emits.

/// `joints` maps of `height x width`, joint-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Heatmaps {
    pub joints: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

impl Heatmaps {
    pub fn zeros(joints: usize, height: usize, width: usize) -> Self {
        Heatmaps {
            joints,
            height,
            width,
            data: vec![0.0; joints * height * width],
        }
    }

    pub fn channel(&self, joint: usize) -> &[f32] {
        let n = self.height * self.width;
        &self.data[joint * n..(joint + 1) * n]
    }

    pub fn channel_mut(&mut self, joint: usize) -> &mut [f32] {
        let n = self.height * self.width;
        &mut self.data[joint * n..(joint + 1) * n]
    }

    /// How close `joint`'s map comes to a second answer: its highest value farther than `radius`
    /// pixels from its peak, as a fraction of the peak (1.0 when the map is flat or all negative).
    /// Near 1, the joint's place is a near tie that any rounding can flip.
    pub fn rival_peak_ratio(&self, joint: usize, radius: f32) -> f32 {
        let map = self.channel(joint);
        let w = self.width;
        let (best, peak) =
            map.iter().enumerate().fold(
                (0, f32::NEG_INFINITY),
                |m, (i, &v)| if v > m.1 { (i, v) } else { m },
            );
        let (px, py) = ((best % w) as f32, (best / w) as f32);
        let rival = map
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                let (x, y) = ((i % w) as f32, (i / w) as f32);
                (x - px).hypot(y - py) > radius
            })
            .fold(f32::NEG_INFINITY, |m, (_, &v)| m.max(v));
        if peak <= 0.0 {
            1.0
        } else {
            (rival / peak).clamp(0.0, 1.0)
        }
    }

    /// Averages in the heatmaps of the mirrored input: each of `mirrored`'s maps is flipped back
    /// left-right and moved to its joint's channel (`permutation[j]` is the joint that `j` becomes
    /// under the mirror), as the flip test prescribes.
    pub fn average_with_mirrored(&mut self, mirrored: &Heatmaps, permutation: &[usize]) {
        assert_eq!(
            (self.joints, self.height, self.width),
            (mirrored.joints, mirrored.height, mirrored.width)
        );
        let (h, w) = (self.height, self.width);
        for (j, &source) in permutation.iter().enumerate().take(self.joints) {
            let src = mirrored.channel(source);
            let dst = self.channel_mut(j);
            for y in 0..h {
                for x in 0..w {
                    let d = &mut dst[y * w + x];
                    *d = 0.5 * (*d + src[y * w + (w - 1 - x)]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rival_peaks_are_measured_outside_the_radius() {
        let mut h = Heatmaps::zeros(2, 8, 8);
        let map = h.channel_mut(0);
        map[3 * 8 + 3] = 1.0; // the peak
        map[3 * 8 + 4] = 0.99; // its own shoulder, inside the radius: no rival
        map[7 * 8 + 7] = 0.5; // a second blob far away
        assert_eq!(h.rival_peak_ratio(0, 1.5), 0.5);
        assert_eq!(h.rival_peak_ratio(0, 0.5), 0.99);
        assert_eq!(h.rival_peak_ratio(1, 1.5), 1.0, "a flat map is all ties");
    }

    #[test]
    fn mirrored_average_flips_and_swaps() {
        let mut a = Heatmaps::zeros(2, 2, 3);
        let mut b = Heatmaps::zeros(2, 2, 3);
        // joint 1 of the mirrored run, column 0 -> joint 0, column 2
        b.channel_mut(1)[0] = 4.0;
        a.channel_mut(0)[2] = 2.0;
        a.average_with_mirrored(&b, &[1, 0]);
        assert_eq!(a.channel(0)[2], 3.0);
        assert_eq!(a.channel(1).iter().sum::<f32>(), 0.0);
    }
}
