//! One PID controller per axis: deadband, anti-windup, output clamp, slew-rate limit and
//! derivative on measurement, with the time step taken from frame timestamps.

use crate::error::{Error, Result};

/// Gains and limits of one PID axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PidGains {
    /// Proportional gain.
    pub kp: f32,
    /// Integral gain (per second).
    pub ki: f32,
    /// Derivative gain (seconds), applied to the measurement's rate of change.
    pub kd: f32,
    /// Errors smaller than this count as zero; larger ones are reduced by it (no step at the edge).
    pub deadband: f32,
    /// Bound on the integral term's contribution to the output.
    pub integral_limit: f32,
    /// Bound on the output's magnitude.
    pub output_limit: f32,
    /// Largest output change per second (`f32::INFINITY` for none).
    pub slew_rate: f32,
    /// Time constant (seconds) of the low-pass filter on the derivative (0 for none).
    pub derivative_tau: f32,
    /// Longer gaps between updates (seconds) restart the integral and derivative memory.
    pub max_dt: f64,
}

impl Default for PidGains {
    fn default() -> Self {
        PidGains {
            kp: 1.0,
            ki: 0.0,
            kd: 0.0,
            deadband: 0.0,
            integral_limit: 1.0,
            output_limit: 1.0,
            slew_rate: f32::INFINITY,
            derivative_tau: 0.0,
            max_dt: 0.5,
        }
    }
}

impl PidGains {
    /// Proportional-only gains with the default limits.
    pub fn p(kp: f32) -> Self {
        PidGains {
            kp,
            ..Default::default()
        }
    }

    /// Checks every gain and limit; `option` names the setting in the error.
    pub fn validate(&self, option: &str) -> Result<()> {
        let bad = |reason: String| Error::Option {
            option: option.to_string(),
            reason,
        };
        for (name, v) in [
            ("kp", self.kp),
            ("ki", self.ki),
            ("kd", self.kd),
            ("deadband", self.deadband),
            ("integral_limit", self.integral_limit),
            ("output_limit", self.output_limit),
            ("derivative_tau", self.derivative_tau),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(bad(format!("{name} must be a finite number >= 0, got {v}")));
            }
        }
        if self.slew_rate.is_nan() || self.slew_rate <= 0.0 {
            return Err(bad(format!(
                "slew_rate must be > 0 (infinity for no limit), got {}",
                self.slew_rate
            )));
        }
        if !self.max_dt.is_finite() || self.max_dt <= 0.0 {
            return Err(bad(format!(
                "max_dt must be > 0 seconds, got {}",
                self.max_dt
            )));
        }
        Ok(())
    }
}

/// A PID controller whose time step comes from the timestamps passed to [`Pid::update`].
#[derive(Debug, Clone)]
pub struct Pid {
    gains: PidGains,
    integral: f32,
    derivative: f32,
    prev_measurement: Option<f32>,
    prev_time: Option<f64>,
    output: f32,
}

fn apply_deadband(e: f32, band: f32) -> f32 {
    if e.abs() <= band {
        0.0
    } else {
        e - band * e.signum()
    }
}

impl Pid {
    /// A controller at rest (zero output, empty integrator).
    pub fn new(gains: PidGains) -> Self {
        Pid {
            gains,
            integral: 0.0,
            derivative: 0.0,
            prev_measurement: None,
            prev_time: None,
            output: 0.0,
        }
    }

    /// The gains in use.
    pub fn gains(&self) -> &PidGains {
        &self.gains
    }

    /// The last output.
    pub fn output(&self) -> f32 {
        self.output
    }

    /// The integral term's current contribution.
    pub fn integral(&self) -> f32 {
        self.integral
    }

    /// Back to rest: zero output, empty integrator, no derivative or time memory.
    pub fn reset(&mut self) {
        self.integral = 0.0;
        self.derivative = 0.0;
        self.prev_measurement = None;
        self.prev_time = None;
        self.output = 0.0;
    }

    /// Tells the controller that the actuator really received `output`, so the slew limit
    /// ramps from there (used when something else scaled or replaced the last output).
    pub fn rebase(&mut self, output: f32) {
        let lim = self.gains.output_limit;
        self.output = if output.is_finite() {
            output.clamp(-lim, lim)
        } else {
            0.0
        };
    }

    /// One step toward `setpoint` at `time` (seconds); returns the new output.
    pub fn update(&mut self, setpoint: f32, measurement: f32, time: f64) -> f32 {
        self.update_with(setpoint, measurement, time, true)
    }

    /// Like [`Pid::update`], integrating only when `integrate` is true (e.g. not on predictions).
    pub fn update_with(
        &mut self,
        setpoint: f32,
        measurement: f32,
        time: f64,
        integrate: bool,
    ) -> f32 {
        let g = self.gains;
        if !setpoint.is_finite() || !measurement.is_finite() || !time.is_finite() {
            // Nothing sensible to steer by: stop and forget.
            self.reset();
            return 0.0;
        }
        let dt = match self.prev_time {
            Some(prev) => {
                let dt = time - prev;
                if dt <= 0.0 {
                    // A repeated or out-of-order timestamp: hold the last output.
                    return self.output;
                }
                Some(dt)
            }
            None => None,
        };
        // Gaps longer than max_dt restart the memory instead of integrating across them.
        let step = dt.filter(|&dt| dt <= g.max_dt);
        let error = apply_deadband(setpoint - measurement, g.deadband);

        // Derivative on measurement: no kick when the setpoint changes.
        match (step, self.prev_measurement) {
            (Some(dt), Some(prev)) => {
                let raw = -(measurement - prev) / dt as f32;
                if g.derivative_tau > 0.0 {
                    let alpha = dt as f32 / (g.derivative_tau + dt as f32);
                    self.derivative += alpha * (raw - self.derivative);
                } else {
                    self.derivative = raw;
                }
            }
            _ => self.derivative = 0.0,
        }

        let p = g.kp * error;
        let d = g.kd * self.derivative;
        if let (true, Some(dt)) = (integrate && g.ki != 0.0, step) {
            let candidate = (self.integral + g.ki * error * dt as f32)
                .clamp(-g.integral_limit, g.integral_limit);
            let unclamped = p + candidate + d;
            // Conditional integration: do not wind further into a saturated output.
            let winding = unclamped.abs() > g.output_limit
                && unclamped.signum() == error.signum()
                && error != 0.0;
            if !winding || candidate.abs() < self.integral.abs() {
                self.integral = candidate;
            }
        }

        let mut out = (p + self.integral + d).clamp(-g.output_limit, g.output_limit);
        if g.slew_rate.is_finite() {
            let max_step = g.slew_rate * dt.map_or(0.0, |dt| dt.min(g.max_dt)) as f32;
            out = out.clamp(self.output - max_step, self.output + max_step);
        }
        self.prev_time = Some(time);
        self.prev_measurement = Some(measurement);
        self.output = out;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-4
    }

    #[test]
    fn follow_pid_proportional_and_output_clamp() {
        let mut pid = Pid::new(PidGains::p(0.5));
        assert!(close(pid.update(0.0, -0.4, 0.0), 0.2));
        let mut pid = Pid::new(PidGains {
            output_limit: 0.6,
            ..PidGains::p(2.0)
        });
        assert!(close(pid.update(1.0, 0.0, 0.0), 0.6));
        assert!(close(pid.update(-1.0, 0.0, 0.1), -0.6));
    }

    #[test]
    fn follow_pid_deadband_zeroes_small_errors_without_a_step() {
        let mut pid = Pid::new(PidGains {
            deadband: 0.1,
            ..PidGains::p(1.0)
        });
        assert_eq!(pid.update(0.0, 0.05, 0.0), 0.0);
        assert_eq!(pid.update(0.0, -0.1, 0.1), 0.0);
        // Just outside the band the output starts from zero, not from 0.1.
        assert!(close(pid.update(0.0, -0.12, 0.2), 0.02));
        assert!(close(pid.update(0.0, 0.5, 0.3), -0.4));
    }

    #[test]
    fn follow_pid_integral_uses_timestamp_dt() {
        let g = PidGains {
            kp: 0.0,
            ki: 1.0,
            ..Default::default()
        };
        // Error 0.5 for 1 s in uneven steps integrates to 0.5 whatever the steps.
        let mut a = Pid::new(g);
        for t in [0.0, 0.1, 0.2, 0.5, 0.6, 1.0] {
            a.update(0.5, 0.0, t);
        }
        assert!(close(a.integral(), 0.5), "{}", a.integral());
        let mut b = Pid::new(g);
        for i in 0..=20 {
            b.update(0.5, 0.0, i as f64 * 0.05);
        }
        assert!(close(b.integral(), 0.5));
        assert!(close(b.output(), 0.5));
    }

    #[test]
    fn follow_pid_integrator_is_clamped() {
        let mut pid = Pid::new(PidGains {
            kp: 0.0,
            ki: 10.0,
            integral_limit: 0.25,
            ..Default::default()
        });
        for i in 0..50 {
            pid.update(1.0, 0.0, i as f64 * 0.1);
        }
        assert!(close(pid.integral(), 0.25));
        assert!(close(pid.output(), 0.25));
    }

    #[test]
    fn follow_pid_conditional_integration_prevents_windup() {
        let g = PidGains {
            kp: 2.0,
            ki: 1.0,
            integral_limit: 1.0,
            output_limit: 1.0,
            ..Default::default()
        };
        let mut pid = Pid::new(g);
        // Saturated by P alone for 3 s: the integrator must not wind up.
        for i in 0..=30 {
            pid.update(1.0, 0.0, i as f64 * 0.1);
        }
        assert_eq!(pid.output(), 1.0);
        assert!(
            pid.integral().abs() < 1e-6,
            "wound up to {}",
            pid.integral()
        );
        // When the error reverses, the output reverses at once.
        let out = pid.update(-0.3, 0.0, 3.1);
        assert!(out < -0.5, "{out}");
        // Without the condition (clamp only) the same history would leave the output positive.
        let mut plain = 0.0f32;
        for _ in 0..30 {
            plain = (plain + 0.1).min(1.0);
        }
        assert!(2.0 * -0.3 + plain > 0.0);
    }

    #[test]
    fn follow_pid_slew_rate_limits_change_per_second() {
        let mut pid = Pid::new(PidGains {
            slew_rate: 2.0,
            ..PidGains::p(1.0)
        });
        // First update has no dt: the output may not move from rest.
        assert_eq!(pid.update(1.0, 0.0, 0.0), 0.0);
        assert!(close(pid.update(1.0, 0.0, 0.1), 0.2));
        assert!(close(pid.update(1.0, 0.0, 0.15), 0.3));
        assert!(close(pid.update(1.0, 0.0, 0.5), 1.0));
        // And down again at the same rate.
        assert!(close(pid.update(-1.0, 0.0, 0.6), 0.8));
        // After rebase the ramp starts from the rebased value.
        pid.rebase(0.0);
        assert!(close(pid.update(1.0, 0.0, 0.7), 0.2));
    }

    #[test]
    fn follow_pid_derivative_on_measurement_has_no_setpoint_kick() {
        let g = PidGains {
            kp: 0.0,
            kd: 0.1,
            output_limit: 10.0,
            ..Default::default()
        };
        let mut pid = Pid::new(g);
        pid.update(0.0, 0.0, 0.0);
        // A setpoint step with a still measurement: no derivative output.
        assert_eq!(pid.update(1.0, 0.0, 0.1), 0.0);
        // The measurement rising at 2/s gives -kd * 2.
        assert!(close(pid.update(1.0, 0.2, 0.2), -0.2));
        // Filtered derivative responds more gently.
        let mut f = Pid::new(PidGains {
            derivative_tau: 0.1,
            ..g
        });
        f.update(0.0, 0.0, 0.0);
        let out = f.update(0.0, 0.2, 0.1);
        assert!(close(out, -0.1), "{out}");
    }

    #[test]
    fn follow_pid_holds_on_repeated_timestamps_and_restarts_after_gaps() {
        let g = PidGains {
            kp: 1.0,
            ki: 1.0,
            kd: 0.5,
            output_limit: 10.0,
            integral_limit: 10.0,
            ..Default::default()
        };
        let mut pid = Pid::new(g);
        pid.update(1.0, 0.0, 0.0);
        let o = pid.update(1.0, 0.0, 0.1);
        assert_eq!(pid.update(5.0, 3.0, 0.1), o);
        assert_eq!(pid.update(5.0, 3.0, 0.05), o);
        let i = pid.integral();
        // A 2 s gap (beyond max_dt 0.5) neither integrates over it nor differentiates across it.
        let out = pid.update(1.0, 0.5, 2.1);
        assert_eq!(pid.integral(), i);
        assert!(close(out, 0.5 + i));
    }

    #[test]
    fn follow_pid_non_finite_input_stops() {
        let mut pid = Pid::new(PidGains::p(1.0));
        pid.update(0.0, -0.5, 0.0);
        assert_eq!(pid.update(0.0, f32::NAN, 0.1), 0.0);
        assert_eq!(pid.output(), 0.0);
    }

    #[test]
    fn follow_pid_gains_validation_names_the_option() {
        assert!(PidGains::default().validate("--follow-yaw").is_ok());
        for g in [
            PidGains::p(-1.0),
            PidGains {
                slew_rate: 0.0,
                ..Default::default()
            },
            PidGains {
                ki: f32::NAN,
                ..Default::default()
            },
            PidGains {
                max_dt: 0.0,
                ..Default::default()
            },
        ] {
            let Err(Error::Option { option, .. }) = g.validate("--follow-yaw") else {
                panic!("{g:?} accepted");
            };
            assert_eq!(option, "--follow-yaw");
        }
    }
}
