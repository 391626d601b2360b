//! Constant-velocity Kalman filter for boxes, the motion model of ByteTrack.
//!
//! The state has eight entries: the box centre `cx, cy`, the aspect ratio `a = w / h`, the
//! height `h`, and the velocity of each of the four. Only the first four are measured. Process and
//! measurement noise follow the model published with DeepSORT and reused by ByteTrack: standard
//! deviations proportional to the box height (1/20 of it for positions, 1/160 for velocities)
//! and small constants for the aspect ratio, so a tall box near the camera may move more pixels
//! per frame than a small far one.
//!
//! Time is counted in frames: `predict(dt)` accepts any positive `dt` (for example the elapsed
//! seconds times the nominal frame rate), so a dropped frame is predicted across with `dt = 2`.
//! The process noise grows linearly with `dt` (a random walk per frame).

// Dense 4x4 and 8x8 algebra reads best with explicit indices.
#![allow(clippy::needless_range_loop)]

use crate::detection::BBox;

/// A measured box as (centre x, centre y, aspect ratio w/h, height).
pub type Measurement = [f64; 4];

/// 0.95 quantile of the chi-square distribution with 1 to 4 degrees of freedom (index 0 is 1 dof),
/// the usual gate for [`KalmanFilter::gating_distance`].
pub const CHI2_INV_95: [f64; 4] = [3.8415, 5.9915, 7.8147, 9.4877];

/// Lower bound of the height used to scale the noise, so degenerate boxes keep a proper covariance.
const MIN_NOISE_HEIGHT: f64 = 1e-3;

/// Noise model of the filter; the filter itself is stateless and shared by every track.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KalmanFilter {
    /// Position standard deviation as a fraction of the box height (DeepSORT/ByteTrack: 1/20).
    pub std_weight_position: f64,
    /// Velocity standard deviation as a fraction of the box height per frame (1/160).
    pub std_weight_velocity: f64,
}

impl Default for KalmanFilter {
    fn default() -> Self {
        Self {
            std_weight_position: 1.0 / 20.0,
            std_weight_velocity: 1.0 / 160.0,
        }
    }
}

/// Mean and covariance of one track's state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KalmanState {
    /// `[cx, cy, a, h, vcx, vcy, va, vh]`, velocities per frame.
    pub mean: [f64; 8],
    /// 8x8 covariance, row-major.
    pub covariance: [[f64; 8]; 8],
}

impl KalmanState {
    /// The box of the current mean.
    pub fn bbox(&self) -> BBox {
        let [cx, cy, a, h, ..] = self.mean;
        let w = a * h;
        BBox::from_cxcywh(cx as f32, cy as f32, w as f32, h as f32)
    }

    /// Centre velocity in pixels per frame.
    pub fn velocity(&self) -> (f64, f64) {
        (self.mean[4], self.mean[5])
    }
}

/// Converts a box into a measurement (centre, aspect ratio, height).
pub fn measurement_from_bbox(b: &BBox) -> Measurement {
    let w = (b.x2 - b.x1) as f64;
    let h = (b.y2 - b.y1) as f64;
    let a = if h.abs() > f64::EPSILON { w / h } else { 0.0 };
    [
        (b.x1 as f64 + b.x2 as f64) / 2.0,
        (b.y1 as f64 + b.y2 as f64) / 2.0,
        a,
        h,
    ]
}

impl KalmanFilter {
    fn noise_height(h: f64) -> f64 {
        if h.is_finite() {
            h.abs().max(MIN_NOISE_HEIGHT)
        } else {
            MIN_NOISE_HEIGHT
        }
    }

    /// A new state at the measured box with zero velocity and a wide covariance.
    pub fn initiate(&self, z: &Measurement) -> KalmanState {
        let h = Self::noise_height(z[3]);
        let p = 2.0 * self.std_weight_position * h;
        let v = 10.0 * self.std_weight_velocity * h;
        let std = [p, p, 1e-2, p, v, v, 1e-5, v];
        let mut covariance = [[0.0; 8]; 8];
        for (i, s) in std.iter().enumerate() {
            covariance[i][i] = s * s;
        }
        KalmanState {
            mean: [z[0], z[1], z[2], z[3], 0.0, 0.0, 0.0, 0.0],
            covariance,
        }
    }

    /// Advances the state by `dt` frames (non-positive or non-finite `dt` leaves it unchanged).
    pub fn predict(&self, s: &mut KalmanState, dt: f64) {
        if !(dt > 0.0 && dt.is_finite()) {
            return;
        }
        let h = Self::noise_height(s.mean[3]);
        let p = self.std_weight_position * h;
        let v = self.std_weight_velocity * h;
        let std = [p, p, 1e-2, p, v, v, 1e-5, v];

        for i in 0..4 {
            s.mean[i] += dt * s.mean[i + 4];
        }
        // P' = F P F^T with F = [[I, dt I], [0, I]]: first rows (F P), then columns (. F^T).
        let c = &mut s.covariance;
        for i in 0..4 {
            for j in 0..8 {
                c[i][j] += dt * c[i + 4][j];
            }
        }
        for row in c.iter_mut() {
            for j in 0..4 {
                row[j] += dt * row[j + 4];
            }
        }
        for (i, s) in std.iter().enumerate() {
            c[i][i] += s * s * dt;
        }
    }

    /// Projected measurement mean and innovation covariance `H P H^T + R`.
    fn project(&self, s: &KalmanState) -> ([f64; 4], [[f64; 4]; 4]) {
        let h = Self::noise_height(s.mean[3]);
        let p = self.std_weight_position * h;
        let r = [p, p, 1e-1, p];
        let mut cov = [[0.0; 4]; 4];
        for i in 0..4 {
            for j in 0..4 {
                cov[i][j] = s.covariance[i][j];
            }
            cov[i][i] += r[i] * r[i];
        }
        ([s.mean[0], s.mean[1], s.mean[2], s.mean[3]], cov)
    }

    /// Corrects the state with a measured box.
    pub fn update(&self, s: &mut KalmanState, z: &Measurement) {
        let (projected, innovation_cov) = self.project(s);
        let Some(chol) = cholesky4(&innovation_cov) else {
            // Not positive definite (only with non-finite input): restart from the measurement.
            *s = self.initiate(z);
            return;
        };
        // Kalman gain K = P H^T S^-1; row r of K solves S k = (P H^T)[r] since S is symmetric.
        let mut gain = [[0.0; 4]; 8];
        for (r, k) in gain.iter_mut().enumerate() {
            let mut b = [
                s.covariance[r][0],
                s.covariance[r][1],
                s.covariance[r][2],
                s.covariance[r][3],
            ];
            cholesky4_solve(&chol, &mut b);
            *k = b;
        }
        let innovation = [
            z[0] - projected[0],
            z[1] - projected[1],
            z[2] - projected[2],
            z[3] - projected[3],
        ];
        for (r, k) in gain.iter().enumerate() {
            s.mean[r] += k.iter().zip(&innovation).map(|(a, b)| a * b).sum::<f64>();
        }
        // P' = P - K S K^T = P - (P H^T) K^T, since K S = P H^T.
        let pht: [[f64; 4]; 8] = std::array::from_fn(|r| {
            [
                s.covariance[r][0],
                s.covariance[r][1],
                s.covariance[r][2],
                s.covariance[r][3],
            ]
        });
        for i in 0..8 {
            for j in 0..8 {
                let d: f64 = (0..4).map(|k| pht[i][k] * gain[j][k]).sum();
                s.covariance[i][j] -= d;
            }
        }
        // Keep the covariance exactly symmetric against rounding drift.
        for i in 0..8 {
            for j in (i + 1)..8 {
                let m = 0.5 * (s.covariance[i][j] + s.covariance[j][i]);
                s.covariance[i][j] = m;
                s.covariance[j][i] = m;
            }
        }
    }

    /// Squared Mahalanobis distance between the state and a measurement; with `only_position`
    /// only the centre is compared (2 degrees of freedom, else 4). Compare with [`CHI2_INV_95`].
    pub fn gating_distance(&self, s: &KalmanState, z: &Measurement, only_position: bool) -> f64 {
        let (projected, cov) = self.project(s);
        let n = if only_position { 2 } else { 4 };
        let mut m = [[0.0; 4]; 4];
        for i in 0..4 {
            for j in 0..4 {
                m[i][j] = if i < n && j < n {
                    cov[i][j]
                } else if i == j {
                    1.0
                } else {
                    0.0
                };
            }
        }
        let Some(chol) = cholesky4(&m) else {
            return f64::INFINITY;
        };
        let mut d = [0.0; 4];
        for i in 0..n {
            d[i] = z[i] - projected[i];
        }
        // d^T S^-1 d = |L^-1 d|^2 (forward substitution only).
        let mut y = [0.0; 4];
        for i in 0..4 {
            let mut v = d[i];
            for k in 0..i {
                v -= chol[i][k] * y[k];
            }
            y[i] = v / chol[i][i];
        }
        y.iter().map(|v| v * v).sum()
    }
}

/// Lower-triangular Cholesky factor of a symmetric positive-definite 4x4 matrix.
fn cholesky4(a: &[[f64; 4]; 4]) -> Option<[[f64; 4]; 4]> {
    let mut l = [[0.0; 4]; 4];
    for i in 0..4 {
        for j in 0..=i {
            let mut sum = a[i][j];
            for k in 0..j {
                sum -= l[i][k] * l[j][k];
            }
            if i == j {
                if sum <= 0.0 || !sum.is_finite() {
                    return None;
                }
                l[i][i] = sum.sqrt();
            } else {
                l[i][j] = sum / l[j][j];
            }
        }
    }
    Some(l)
}

/// Solves `L L^T x = b` in place.
fn cholesky4_solve(l: &[[f64; 4]; 4], b: &mut [f64; 4]) {
    for i in 0..4 {
        let mut v = b[i];
        for k in 0..i {
            v -= l[i][k] * b[k];
        }
        b[i] = v / l[i][i];
    }
    for i in (0..4).rev() {
        let mut v = b[i];
        for k in (i + 1)..4 {
            v -= l[k][i] * b[k];
        }
        b[i] = v / l[i][i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position_trace(s: &KalmanState) -> f64 {
        (0..4).map(|i| s.covariance[i][i]).sum()
    }

    #[test]
    fn constant_velocity_box_is_predicted_within_a_pixel() {
        let kf = KalmanFilter::default();
        let at = |t: f64| {
            BBox::from_cxcywh(
                (100.0 + 3.0 * t) as f32,
                (80.0 - 1.5 * t) as f32,
                40.0,
                100.0,
            )
        };
        let mut s = kf.initiate(&measurement_from_bbox(&at(0.0)));
        for t in 1..=20 {
            kf.predict(&mut s, 1.0);
            kf.update(&mut s, &measurement_from_bbox(&at(t as f64)));
        }
        kf.predict(&mut s, 1.0);
        let (p, truth) = (s.bbox(), at(21.0));
        for (a, b) in [
            (p.x1, truth.x1),
            (p.y1, truth.y1),
            (p.x2, truth.x2),
            (p.y2, truth.y2),
        ] {
            assert!((a - b).abs() < 1.0, "predicted {p:?}, truth {truth:?}");
        }
        let (vx, vy) = s.velocity();
        assert!(
            (vx - 3.0).abs() < 0.1 && (vy + 1.5).abs() < 0.1,
            "velocity {vx} {vy}"
        );
    }

    #[test]
    fn covariance_grows_while_coasting() {
        let kf = KalmanFilter::default();
        let mut s = kf.initiate(&[50.0, 50.0, 0.5, 80.0]);
        for t in 1..=5 {
            kf.predict(&mut s, 1.0);
            kf.update(&mut s, &[50.0 + 2.0 * t as f64, 50.0, 0.5, 80.0]);
        }
        let mut previous = position_trace(&s);
        for _ in 0..10 {
            kf.predict(&mut s, 1.0);
            let now = position_trace(&s);
            assert!(now > previous, "{now} <= {previous}");
            previous = now;
        }
    }

    #[test]
    fn variable_dt_moves_like_several_frames() {
        let kf = KalmanFilter::default();
        let mut s = kf.initiate(&[0.0, 0.0, 0.5, 100.0]);
        for t in 1..=10 {
            kf.predict(&mut s, 1.0);
            kf.update(&mut s, &[4.0 * t as f64, 2.0 * t as f64, 0.5, 100.0]);
        }
        let mut once = s;
        kf.predict(&mut once, 2.0);
        let mut twice = s;
        kf.predict(&mut twice, 1.0);
        kf.predict(&mut twice, 1.0);
        for i in 0..8 {
            assert!((once.mean[i] - twice.mean[i]).abs() < 1e-9);
        }
        let mut single = s;
        kf.predict(&mut single, 1.0);
        assert!(position_trace(&once) > position_trace(&single));
        // A zero or negative step is ignored.
        let mut same = s;
        kf.predict(&mut same, 0.0);
        kf.predict(&mut same, -1.0);
        assert_eq!(same, s);
    }

    #[test]
    fn update_pulls_toward_measurement_and_shrinks_covariance() {
        let kf = KalmanFilter::default();
        let mut s = kf.initiate(&[100.0, 100.0, 0.4, 120.0]);
        kf.predict(&mut s, 1.0);
        let before = position_trace(&s);
        kf.update(&mut s, &[110.0, 100.0, 0.4, 120.0]);
        assert!(s.mean[0] > 100.0 && s.mean[0] < 110.0);
        assert!(position_trace(&s) < before);
        for i in 0..8 {
            for j in 0..8 {
                assert_eq!(s.covariance[i][j], s.covariance[j][i]);
            }
        }
    }

    #[test]
    fn gating_distance_separates_near_and_far() {
        let kf = KalmanFilter::default();
        let mut s = kf.initiate(&[100.0, 100.0, 0.4, 120.0]);
        kf.predict(&mut s, 1.0);
        let near = kf.gating_distance(&s, &[101.0, 99.0, 0.4, 121.0], false);
        let far = kf.gating_distance(&s, &[200.0, 100.0, 0.4, 120.0], false);
        assert!(near < CHI2_INV_95[3], "{near}");
        assert!(far > CHI2_INV_95[3], "{far}");
        let far_pos = kf.gating_distance(&s, &[200.0, 100.0, 9.0, 10.0], true);
        assert!((far_pos - far).abs() / far < 0.05);
    }

    #[test]
    fn bbox_round_trips_through_measurement() {
        let b = BBox::new(10.0, 20.0, 50.0, 120.0);
        let kf = KalmanFilter::default();
        let s = kf.initiate(&measurement_from_bbox(&b));
        let r = s.bbox();
        assert!((r.x1 - b.x1).abs() < 1e-4 && (r.y2 - b.y2).abs() < 1e-4);
    }
}
