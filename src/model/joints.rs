//! Joint sets: names, skeleton edges for drawing, and left/right pairs for the flip test.

use serde::Serialize;

/// The joints a model predicts, in heatmap channel order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JointSet {
    /// Identifier of a known set (`mpii16`) or `custom`.
    pub id: String,
    pub names: Vec<String>,
    /// Pairs of joint indices joined by a bone when drawing.
    pub edges: Vec<(usize, usize)>,
    /// Pairs of joint indices that swap under a horizontal mirror.
    pub flip_pairs: Vec<(usize, usize)>,
}

/// MPII Human Pose joint order, as every stacked-hourglass release uses it.
const MPII16_NAMES: [&str; 16] = [
    "r_ankle",
    "r_knee",
    "r_hip",
    "l_hip",
    "l_knee",
    "l_ankle",
    "pelvis",
    "thorax",
    "upper_neck",
    "head_top",
    "r_wrist",
    "r_elbow",
    "r_shoulder",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
];

const MPII16_EDGES: [(usize, usize); 15] = [
    (0, 1),
    (1, 2),
    (2, 6),
    (6, 3),
    (3, 4),
    (4, 5),
    (6, 7),
    (7, 8),
    (8, 9),
    (10, 11),
    (11, 12),
    (12, 7),
    (7, 13),
    (13, 14),
    (14, 15),
];

const MPII16_FLIP_PAIRS: [(usize, usize); 6] =
    [(0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)];

impl JointSet {
    /// The 16 MPII joints with their skeleton.
    pub fn mpii16() -> Self {
        JointSet {
            id: "mpii16".into(),
            names: MPII16_NAMES.iter().map(|s| s.to_string()).collect(),
            edges: MPII16_EDGES.to_vec(),
            flip_pairs: MPII16_FLIP_PAIRS.to_vec(),
        }
    }

    /// Looks a known set up by its identifier.
    pub fn by_id(id: &str) -> Option<Self> {
        match id {
            "mpii16" | "mpii" => Some(Self::mpii16()),
            _ => None,
        }
    }

    /// A set of `n` unnamed joints (`joint_0`, ...) with no skeleton: used when a model predicts a
    /// joint count hgpose does not know and no sidecar names them.
    pub fn unnamed(n: usize) -> Self {
        JointSet {
            id: "custom".into(),
            names: (0..n).map(|i| format!("joint_{i}")).collect(),
            edges: Vec::new(),
            flip_pairs: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Channel permutation that swaps left and right joints (identity where unpaired).
    pub fn flip_permutation(&self) -> Vec<usize> {
        let mut perm: Vec<usize> = (0..self.len()).collect();
        for &(a, b) in &self.flip_pairs {
            perm[a] = b;
            perm[b] = a;
        }
        perm
    }

    /// Checks indices are in range and names unique; `what` names the source for the message.
    pub fn validate(&self) -> Result<(), String> {
        let n = self.len();
        if n == 0 {
            return Err("the joint set is empty".into());
        }
        for (i, name) in self.names.iter().enumerate() {
            if self.names[..i].contains(name) {
                return Err(format!("joint name {name:?} appears twice"));
            }
        }
        for &(a, b) in self.edges.iter().chain(&self.flip_pairs) {
            if a >= n || b >= n {
                return Err(format!(
                    "pair [{a}, {b}] refers to a joint beyond the {n} joints"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpii16_is_consistent() {
        let set = JointSet::mpii16();
        assert_eq!(set.len(), 16);
        set.validate().unwrap();
        // every joint is on the skeleton
        for j in 0..16 {
            assert!(
                set.edges.iter().any(|&(a, b)| a == j || b == j),
                "joint {j} not drawn"
            );
        }
    }

    #[test]
    fn flip_permutation_swaps_sides_and_is_an_involution() {
        let set = JointSet::mpii16();
        let perm = set.flip_permutation();
        for (i, &p) in perm.iter().enumerate() {
            assert_eq!(perm[p], i);
            let (a, b) = (&set.names[i], &set.names[p]);
            if a.starts_with("r_") {
                assert_eq!(b.trim_start_matches("l_"), a.trim_start_matches("r_"));
            } else if !a.starts_with("l_") {
                assert_eq!(i, p, "{a} is central and must map to itself");
            }
        }
    }

    #[test]
    fn validate_rejects_out_of_range_edges() {
        let mut set = JointSet::unnamed(3);
        set.edges.push((0, 3));
        assert!(set.validate().unwrap_err().contains("beyond"));
    }
}
