//! L2-regularised logistic regression over one-hot slots, by Newton's method (IRLS),
//! and Platt scaling.
//!
//! Every lead has exactly one active slot per feature, so the design matrix is stored as
//! each row's active columns and the Hessian costs rows × features² per iteration, not
//! rows × columns². A few hundred columns solve by Cholesky in milliseconds. (Why not
//! linfa-logistic: see docs/fit.md.)

/// Weights per column and an unpenalised intercept.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    pub intercept: f64,
    pub columns: Vec<f64>,
}

impl Weights {
    pub fn logit(&self, active: &[usize]) -> f64 {
        self.intercept + active.iter().map(|&c| self.columns[c]).sum::<f64>()
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LogisticError {
    #[error("no leads to fit")]
    Empty,
    #[error("Newton's method did not converge in {0} iterations")]
    NoConvergence(usize),
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Penalised negative log-likelihood.
fn loss(rows: &[Vec<usize>], y: &[bool], w: &Weights, lambda: f64) -> f64 {
    let nll: f64 = rows
        .iter()
        .zip(y)
        .map(|(r, &yi)| {
            let z = w.logit(r);
            // log(1 + e^z) - y z, computed stably.
            let softplus = if z > 0.0 {
                z + (-z).exp().ln_1p()
            } else {
                z.exp().ln_1p()
            };
            softplus - if yi { z } else { 0.0 }
        })
        .sum();
    nll + 0.5 * lambda * w.columns.iter().map(|b| b * b).sum::<f64>()
}

/// Fits `width` column weights and an intercept to rows of active columns, minimising
/// the negative log-likelihood + `lambda`/2 × ‖weights‖².
pub fn fit(
    rows: &[Vec<usize>],
    y: &[bool],
    width: usize,
    lambda: f64,
) -> Result<Weights, LogisticError> {
    if rows.is_empty() {
        return Err(LogisticError::Empty);
    }
    let dim = width + 1; // the intercept is the last coordinate
    let rate = y.iter().filter(|v| **v).count() as f64 / y.len() as f64;
    let mut w = Weights {
        intercept: (rate.clamp(1e-6, 1.0 - 1e-6) / (1.0 - rate.clamp(1e-6, 1.0 - 1e-6))).ln(),
        columns: vec![0.0; width],
    };
    let mut current = loss(rows, y, &w, lambda);
    const MAX_ITER: usize = 100;
    for _ in 0..MAX_ITER {
        let mut grad = vec![0.0; dim];
        let mut hess = vec![0.0; dim * dim];
        for (r, &yi) in rows.iter().zip(y) {
            let p = sigmoid(w.logit(r));
            let g = p - f64::from(u8::from(yi));
            let h = (p * (1.0 - p)).max(1e-10);
            for &a in r.iter().chain(std::iter::once(&width)) {
                grad[a] += g;
                for &b in r.iter().chain(std::iter::once(&width)) {
                    hess[a * dim + b] += h;
                }
            }
        }
        for j in 0..width {
            grad[j] += lambda * w.columns[j];
            hess[j * dim + j] += lambda;
        }
        hess[width * dim + width] += 1e-9;
        let step = solve_spd(&mut hess, &grad, dim);
        // Damped Newton: halve the step until the loss does not increase.
        let mut t = 1.0;
        loop {
            let trial = Weights {
                intercept: w.intercept - t * step[width],
                columns: (0..width).map(|j| w.columns[j] - t * step[j]).collect(),
            };
            let l = loss(rows, y, &trial, lambda);
            if l <= current + 1e-12 || t < 1e-4 {
                let done = (current - l).abs() < 1e-9 * current.max(1.0)
                    && step.iter().all(|s| (t * s).abs() < 1e-6);
                w = trial;
                current = l;
                if done {
                    return Ok(w);
                }
                break;
            }
            t *= 0.5;
        }
        if step.iter().all(|s| (t * s).abs() < 1e-7) {
            return Ok(w);
        }
    }
    Err(LogisticError::NoConvergence(MAX_ITER))
}

/// Solves `a x = b` for a symmetric positive definite `a` (dim × dim, overwritten by its
/// Cholesky factor).
fn solve_spd(a: &mut [f64], b: &[f64], dim: usize) -> Vec<f64> {
    for j in 0..dim {
        let mut d = a[j * dim + j];
        for k in 0..j {
            d -= a[j * dim + k] * a[j * dim + k];
        }
        let d = d.max(1e-12).sqrt();
        a[j * dim + j] = d;
        for i in j + 1..dim {
            let mut s = a[i * dim + j];
            for k in 0..j {
                s -= a[i * dim + k] * a[j * dim + k];
            }
            a[i * dim + j] = s / d;
        }
    }
    let mut x = b.to_vec();
    for i in 0..dim {
        for k in 0..i {
            x[i] -= a[i * dim + k] * x[k];
        }
        x[i] /= a[i * dim + i];
    }
    for i in (0..dim).rev() {
        for k in i + 1..dim {
            x[i] -= a[k * dim + i] * x[k];
        }
        x[i] /= a[i * dim + i];
    }
    x
}

/// Platt scaling: `a`, `b` so that sigmoid(a z + b) is calibrated on (z, y); a small
/// ridge keeps them finite on separable data.
pub fn platt(z: &[f64], y: &[bool]) -> (f64, f64) {
    let (mut a, mut b) = (1.0, 0.0);
    for _ in 0..50 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) =
            (1e-3 * (a - 1.0), 1e-3 * b, 1e-3, 0.0, 1e-3);
        for (&zi, &yi) in z.iter().zip(y) {
            let p = sigmoid(a * zi + b);
            let g = p - f64::from(u8::from(yi));
            let h = (p * (1.0 - p)).max(1e-10);
            ga += g * zi;
            gb += g;
            haa += h * zi * zi;
            hab += h * zi;
            hbb += h;
        }
        let det = haa * hbb - hab * hab;
        let (da, db) = ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det);
        a -= da;
        b -= db;
        if da.abs() < 1e-9 && db.abs() < 1e-9 {
            break;
        }
    }
    (a, b)
}

/// Mean negative log-likelihood of probabilities `p` (clamped away from 0 and 1).
pub fn log_loss(p: &[f64], y: &[bool]) -> f64 {
    p.iter()
        .zip(y)
        .map(|(&p, &y)| {
            let p = p.clamp(1e-12, 1.0 - 1e-12);
            -if y { p.ln() } else { (1.0 - p).ln() }
        })
        .sum::<f64>()
        / p.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Two features of three slots each; outcomes drawn from known log-odds.
    fn synthetic(n: usize, seed: u64) -> (Vec<Vec<usize>>, Vec<bool>, [f64; 6]) {
        let truth = [-1.0, 0.0, 1.0, 0.5, 0.0, -0.5];
        let mut rng = StdRng::seed_from_u64(seed);
        let mut rows = Vec::new();
        let mut y = Vec::new();
        for _ in 0..n {
            let (a, b) = (rng.random_range(0..3), 3 + rng.random_range(0..3));
            let p = sigmoid(-0.3 + truth[a] + truth[b]);
            rows.push(vec![a, b]);
            y.push(rng.random_bool(p));
        }
        (rows, y, truth)
    }

    #[test]
    fn recovers_known_log_odds_differences() {
        let (rows, y, truth) = synthetic(40_000, 1);
        let w = fit(&rows, &y, 6, 1e-3).unwrap();
        // One-hot weights are identified up to a shift per feature: compare differences.
        for (a, b) in [(0, 2), (3, 5), (1, 2)] {
            let got = w.columns[a] - w.columns[b];
            let want = truth[a] - truth[b];
            assert!((got - want).abs() < 0.08, "slot {a}-{b}: {got} vs {want}");
        }
    }

    #[test]
    fn gradient_is_zero_at_the_solution() {
        let (rows, y, _) = synthetic(2_000, 2);
        let lambda = 5.0;
        let w = fit(&rows, &y, 6, lambda).unwrap();
        let mut grad = vec![0.0; 7];
        for (r, &yi) in rows.iter().zip(&y) {
            let g = sigmoid(w.logit(r)) - f64::from(u8::from(yi));
            for &c in r {
                grad[c] += g;
            }
            grad[6] += g;
        }
        for (g, b) in grad.iter_mut().zip(&w.columns) {
            *g += lambda * b;
        }
        assert!(grad.iter().all(|g| g.abs() < 1e-4), "{grad:?}");
    }

    #[test]
    fn a_stronger_penalty_shrinks_the_weights() {
        let (rows, y, _) = synthetic(2_000, 3);
        let norm = |w: &Weights| w.columns.iter().map(|b| b * b).sum::<f64>();
        let loose = fit(&rows, &y, 6, 0.1).unwrap();
        let tight = fit(&rows, &y, 6, 1000.0).unwrap();
        assert!(norm(&tight) < norm(&loose) / 4.0);
    }

    #[test]
    fn platt_undoes_a_known_distortion() {
        let mut rng = StdRng::seed_from_u64(4);
        let z: Vec<f64> = (0..20_000).map(|_| rng.random_range(-4.0..4.0)).collect();
        // True probability sigmoid(0.5 z - 1): the raw z is overconfident and shifted.
        let y: Vec<bool> = z
            .iter()
            .map(|&z| rng.random_bool(sigmoid(0.5 * z - 1.0)))
            .collect();
        let (a, b) = platt(&z, &y);
        assert!(
            (a - 0.5).abs() < 0.05 && (b + 1.0).abs() < 0.08,
            "a {a} b {b}"
        );
    }
}
