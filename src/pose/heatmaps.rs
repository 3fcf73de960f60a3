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
