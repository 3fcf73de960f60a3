//! One frame through preprocess -> model -> pose, with per-stage timing.

use image::RgbImage;
use std::path::Path;
use std::time::Instant;

use crate::error::Result;
use crate::model::{Contract, PoseModel, Precision};
use crate::outputs::TimingMs;
use crate::pose::{decode_peaks, Heatmaps, Pose};
use crate::preprocess::{check_margin, CropTransform, Preprocessor, Rect};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EstimatorOptions {
    /// Also run the mirrored crop and average the heatmaps (twice the time, steadier joints).
    pub flip_test: bool,
    /// Context added around a person box, as a fraction of its size on each side.
    pub margin: f32,
    /// Arithmetic precision (`auto` resolves per CPU).
    pub precision: Precision,
}

impl EstimatorOptions {
    /// Rejects settings that would make every frame fail, before any frame is read.
    pub fn validate(&self) -> Result<()> {
        check_margin(self.margin)
    }
}

impl Default for EstimatorOptions {
    fn default() -> Self {
        EstimatorOptions {
            flip_test: false,
            margin: 0.25,
            precision: Precision::F32,
        }
    }
}

/// What one frame gave.
#[derive(Debug, Clone)]
pub struct Estimate {
    pub pose: Pose,
    pub crop: CropTransform,
    pub timing: TimingMs,
}

/// A model with its preprocessor and buffers, ready for frame after frame.
pub struct Estimator {
    model: PoseModel,
    preprocessor: Preprocessor,
    heatmaps: Heatmaps,
    mirrored: Heatmaps,
    /// Heatmap channel each joint takes from the mirrored run (left/right swapped).
    flip_permutation: Vec<usize>,
    options: EstimatorOptions,
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

impl Estimator {
    pub fn new(model: PoseModel, options: EstimatorOptions) -> Result<Self> {
        options.validate()?;
        let c = model.contract();
        let preprocessor = Preprocessor::new(&c.input);
        let heatmaps = Heatmaps::zeros(c.output.joints, c.output.height, c.output.width);
        let flip_permutation = c.joints.flip_permutation();
        Ok(Estimator {
            flip_permutation,
            mirrored: heatmaps.clone(),
            heatmaps,
            model,
            preprocessor,
            options,
        })
    }

    /// Loads the model at `path` (sidecar beside it, or `sidecar`).
    pub fn load(path: &Path, sidecar: Option<&Path>, options: EstimatorOptions) -> Result<Self> {
        options.validate()?;
        Self::new(
            PoseModel::load_with_precision(path, sidecar, options.precision)?,
            options,
        )
    }

    pub fn contract(&self) -> &Contract {
        self.model.contract()
    }

    pub fn model(&self) -> &PoseModel {
        &self.model
    }

    /// The model, to time or profile it on the last frame's input.
    pub fn model_mut(&mut self) -> &mut PoseModel {
        &mut self.model
    }

    /// The heatmaps of the last frame (flip-averaged when the flip test is on).
    pub fn heatmaps(&self) -> &Heatmaps {
        &self.heatmaps
    }

    /// The crop the network saw for the last frame.
    pub fn crop_image(&self) -> &RgbImage {
        self.preprocessor.crop_image()
    }

    /// The crop for `frame`: around `person` when given, else the whole frame.
    pub fn crop_for(&self, frame: &RgbImage, person: Option<Rect>) -> Result<CropTransform> {
        let input = &self.model.contract().input;
        match person {
            Some(r) => CropTransform::around(r, self.options.margin, input.width, input.height),
            None => {
                CropTransform::whole_frame(frame.width(), frame.height(), input.width, input.height)
            }
        }
    }

    /// Estimates the pose of the person in `frame` (in `person`, if given).
    pub fn estimate(&mut self, frame: &RgbImage, person: Option<Rect>) -> Result<Estimate> {
        let crop = self.crop_for(frame, person)?;
        let mut timing = TimingMs::default();
        let start = Instant::now();

        let t = Instant::now();
        self.preprocessor
            .fill(frame, &crop, false, self.model.input_mut())?;
        timing.preprocess = ms_since(t);
        let t = Instant::now();
        self.model.run(&mut self.heatmaps)?;
        timing.inference = ms_since(t);

        if self.options.flip_test {
            let t = Instant::now();
            self.preprocessor
                .fill(frame, &crop, true, self.model.input_mut())?;
            timing.preprocess += ms_since(t);
            let t = Instant::now();
            self.model.run(&mut self.mirrored)?;
            timing.inference += ms_since(t);
            self.heatmaps
                .average_with_mirrored(&self.mirrored, &self.flip_permutation);
        }

        let t = Instant::now();
        let contract = self.model.contract();
        let peaks = decode_peaks(&self.heatmaps);
        let pose = Pose::from_peaks(
            &peaks,
            &contract.joints,
            contract.output.stride(&contract.input),
            &crop,
        );
        timing.decode = ms_since(t);
        timing.total = ms_since(start);
        Ok(Estimate { pose, crop, timing })
    }
}
