//! Heatmap peak finding with the paper's quarter-pixel refinement.

use super::Heatmaps;

/// A joint's peak in heatmap coordinates (pixel `(i, j)` covers `[i, i+1) x [j, j+1)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peak {
    pub x: f32,
    pub y: f32,
    /// The heatmap's value at its maximum.
    pub confidence: f32,
}

/// One peak per joint: argmax, then a quarter pixel toward the higher neighbour on each axis
/// (no shift at a border or when both neighbours are equal). NaNs never win the argmax.
pub fn decode_peaks(heatmaps: &Heatmaps) -> Vec<Peak> {
    (0..heatmaps.joints)
        .map(|j| decode_channel(heatmaps.channel(j), heatmaps.width, heatmaps.height))
        .collect()
}

fn decode_channel(map: &[f32], w: usize, h: usize) -> Peak {
    let mut best = 0;
    let mut best_value = f32::NEG_INFINITY;
    for (i, &v) in map.iter().enumerate() {
        if v > best_value {
            best = i;
            best_value = v;
        }
    }
    if !best_value.is_finite() {
        return Peak {
            x: w as f32 / 2.0,
            y: h as f32 / 2.0,
            confidence: 0.0,
        };
    }
    let (px, py) = (best % w, best / w);
    let at = |x: usize, y: usize| map[y * w + x];
    let shift = |lower: Option<f32>, higher: Option<f32>| match (lower, higher) {
        (Some(l), Some(r)) if r > l => 0.25,
        (Some(l), Some(r)) if l > r => -0.25,
        _ => 0.0,
    };
    let dx = shift(
        px.checked_sub(1).map(|x| at(x, py)),
        (px + 1 < w).then(|| at(px + 1, py)),
    );
    let dy = shift(
        py.checked_sub(1).map(|y| at(px, y)),
        (py + 1 < h).then(|| at(px, py + 1)),
    );
    Peak {
        x: px as f32 + 0.5 + dx,
        y: py as f32 + 0.5 + dy,
        confidence: best_value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Gaussian heatmap (sigma in heatmap pixels) peaking at continuous `(cx, cy)`.
    fn gaussian(w: usize, h: usize, cx: f32, cy: f32, sigma: f32) -> Vec<f32> {
        let mut map = vec![0.0; w * h];
        for y in 0..h {
            for x in 0..w {
                let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                map[y * w + x] = (-(dx * dx + dy * dy) / (2.0 * sigma * sigma)).exp();
            }
        }
        map
    }

    #[test]
    fn recovers_sub_pixel_gaussian_peaks_within_a_quarter_pixel() {
        let mut worst = 0.0f32;
        let mut plain_argmax_worst = 0.0f32;
        for i in 0..200 {
            // deterministic sub-pixel positions spread over the map, away from the border
            let cx = 5.0 + (i as f32 * 0.6180339 * 53.0) % 53.0;
            let cy = 5.0 + (i as f32 * 0.4142136 * 53.0) % 53.0;
            let mut hm = Heatmaps::zeros(1, 64, 64);
            hm.data = gaussian(64, 64, cx, cy, 1.0);
            let p = decode_peaks(&hm)[0];
            worst = worst.max((p.x - cx).abs()).max((p.y - cy).abs());
            let idx = hm
                .data
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            let (ax, ay) = ((idx % 64) as f32 + 0.5, (idx / 64) as f32 + 0.5);
            plain_argmax_worst = plain_argmax_worst.max((ax - cx).abs()).max((ay - cy).abs());
            assert!(p.confidence > 0.7 && p.confidence <= 1.0);
        }
        assert!(worst <= 0.25 + 1e-4, "worst error {worst}");
        // the refinement is doing something: plain argmax is off by up to half a pixel
        assert!(plain_argmax_worst > 0.4, "{plain_argmax_worst}");
    }

    #[test]
    fn peaks_on_the_border_and_nan_maps_do_not_panic() {
        let mut hm = Heatmaps::zeros(2, 8, 8);
        hm.channel_mut(0)[0] = 1.0;
        hm.channel_mut(1).fill(f32::NAN);
        let p = decode_peaks(&hm);
        assert_eq!((p[0].x, p[0].y, p[0].confidence), (0.5, 0.5, 1.0));
        assert_eq!(p[1].confidence, 0.0);
    }

    #[test]
    fn shift_goes_toward_the_higher_neighbour() {
        let mut hm = Heatmaps::zeros(1, 5, 5);
        let c = hm.channel_mut(0);
        c[2 * 5 + 2] = 1.0;
        c[2 * 5 + 1] = 0.5; // left higher than right
        c[3 * 5 + 2] = 0.5; // below higher than above
        let p = decode_peaks(&hm)[0];
        assert_eq!((p.x, p.y), (2.25, 2.75));
    }
}
