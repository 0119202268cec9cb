//! Gaussian KL terms. Posteriors are diagonal: q_i = N(mu_i, diag(exp(logvar_i))).

use tch::Tensor;

/// `KL(q_i || N(0, I))` summed over cells and latent dimensions:
/// `-1/2 * sum_ik (1 + logvar_ik - mu_ik^2 - exp(logvar_ik))` (Kingma & Welling 2014).
pub fn standard_normal(mu: &Tensor, logvar: &Tensor) -> Tensor {
    (logvar.exp() + mu.square() - logvar - 1.0).sum(mu.kind()) * 0.5
}

/// All pairwise `KL(q_i || q_j)` of a minibatch as a B x B matrix:
/// `1/2 * sum_k [ logvar_jk - logvar_ik + (s_ik^2 + (mu_ik - mu_jk)^2) / s_jk^2 - 1 ]`.
///
/// Computed with matrix products in O(B^2 + B d) memory rather than a B x B x d tensor:
/// with `r_j = exp(-logvar_j)`, the sum over k expands to
/// `(s_i^2 + mu_i^2) . r_j - 2 mu_i . (mu_j r_j) + sum_k mu_jk^2 r_jk + sum_k logvar_jk - sum_k logvar_ik - d`.
pub fn pairwise(mu: &Tensor, logvar: &Tensor) -> Tensor {
    let d = mu.size()[1] as f64;
    let inv_var = (-logvar).exp(); // B x d
    let var = logvar.exp();
    let a = (&var + mu.square()).matmul(&inv_var.transpose(0, 1)); // [i, j]
    let cross = mu.matmul(&(mu * &inv_var).transpose(0, 1)); // [i, j]
    let col = (mu.square() * &inv_var).sum_dim_intlist(1, false, mu.kind())
        + logvar.sum_dim_intlist(1, false, mu.kind()); // depends on j
    let row = logvar.sum_dim_intlist(1, true, mu.kind()); // depends on i, B x 1
    (a - cross * 2.0 + col.unsqueeze(0) - row - d) * 0.5
}

/// The invariance term of SAILER/SAILERX: `mean_{i,j} KL(q_i || q_j) - d / 2` (`docs/models.md`, "SAILERX").
/// Minimising the mean pairwise KL bounds the mutual information between z and the
/// confounders the decoder is conditioned on (Moyer et al. 2018).
pub fn invariance(mu: &Tensor, logvar: &Tensor) -> Tensor {
    let d = mu.size()[1] as f64;
    pairwise(mu, logvar).mean(mu.kind()) - d / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn rand(b: i64, d: i64, seed: i64) -> (Tensor, Tensor) {
        tch::manual_seed(seed);
        let opts = (Kind::Double, Device::Cpu);
        (
            Tensor::randn([b, d], opts),
            Tensor::randn([b, d], opts) * 0.5,
        )
    }

    fn to_vec(t: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
    }

    #[test]
    fn standard_normal_kl_matches_closed_form_per_element() {
        let (mu, lv) = rand(4, 3, 0);
        let (m, l) = (to_vec(&mu), to_vec(&lv));
        let want: f64 = m
            .iter()
            .zip(&l)
            .map(|(m, l)| 0.5 * (l.exp() + m * m - l - 1.0))
            .sum();
        assert!((standard_normal(&mu, &lv).double_value(&[]) - want).abs() < 1e-10);
        let zero = Tensor::zeros([5, 2], (Kind::Double, Device::Cpu));
        assert_eq!(standard_normal(&zero, &zero).double_value(&[]), 0.0);
    }

    #[test]
    fn pairwise_kl_matches_a_brute_force_loop() {
        let (mu, lv) = rand(6, 4, 1);
        let (b, d) = (6usize, 4usize);
        let (m, l) = (to_vec(&mu), to_vec(&lv));
        let got = to_vec(&pairwise(&mu, &lv));
        for i in 0..b {
            for j in 0..b {
                let mut kl = 0.0;
                for k in 0..d {
                    let (mi, mj, li, lj) = (m[i * d + k], m[j * d + k], l[i * d + k], l[j * d + k]);
                    kl += 0.5 * (lj - li + (li.exp() + (mi - mj).powi(2)) / lj.exp() - 1.0);
                }
                assert!(
                    (got[i * b + j] - kl).abs() < 1e-10,
                    "({i},{j}) {} vs {kl}",
                    got[i * b + j]
                );
            }
            assert!(got[i * b + i].abs() < 1e-10, "KL(q||q) = 0");
        }
        assert!(got.iter().all(|v| *v > -1e-12), "KL >= 0");
    }

    #[test]
    fn invariance_is_mean_minus_half_d() {
        let (mu, lv) = rand(5, 3, 2);
        let want = to_vec(&pairwise(&mu, &lv)).iter().sum::<f64>() / 25.0 - 1.5;
        assert!((invariance(&mu, &lv).double_value(&[]) - want).abs() < 1e-10);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let (mu, lv) = rand(4, 3, 3);
        let f = |mu: &Tensor, lv: &Tensor| invariance(mu, lv) + standard_normal(mu, lv);
        let mu_v = mu.set_requires_grad(true);
        let lv_v = lv.set_requires_grad(true);
        f(&mu_v, &lv_v).backward();
        let (g_mu, g_lv) = (to_vec(&mu_v.grad()), to_vec(&lv_v.grad()));
        let eps = 1e-6;
        for (which, grad) in [(0, &g_mu), (1, &g_lv)] {
            for idx in 0..12 {
                let bump = |s: f64| {
                    let (m, l) = (mu.copy(), lv.copy());
                    let t = if which == 0 { &m } else { &l };
                    let _ = t.flatten(0, -1).get(idx).g_add_scalar_(s);
                    f(&m, &l).double_value(&[])
                };
                let fd = (bump(eps) - bump(-eps)) / (2.0 * eps);
                assert!(
                    (fd - grad[idx as usize]).abs() < 1e-5,
                    "{which} {idx}: {fd} vs {}",
                    grad[idx as usize]
                );
            }
        }
    }
}
