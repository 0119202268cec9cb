//! Minibatches of cell indices, reshuffled every epoch from a seeded generator.

use rand::Rng;
use rand::seq::SliceRandom;

/// Shuffles `cells` and cuts them into batches of `batch_size`. A final batch of a
/// single cell is merged into the one before it: BatchNorm cannot train on one cell.
pub fn shuffled<R: Rng>(cells: &[usize], batch_size: usize, rng: &mut R) -> Vec<Vec<usize>> {
    let mut order = cells.to_vec();
    order.shuffle(rng);
    let mut out: Vec<Vec<usize>> = order
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect();
    if out.len() > 1 && out.last().is_some_and(|b| b.len() == 1) {
        let last = out.pop().expect("checked");
        out.last_mut().expect("checked").extend(last);
    }
    out
}

/// How many batches [`shuffled`] makes of `n` cells (whatever their order).
pub fn count(n: usize, batch_size: usize) -> usize {
    let size = batch_size.max(1);
    let full = n.div_ceil(size);
    if full > 1 && n - (full - 1) * size == 1 {
        full - 1
    } else {
        full
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn batches_cover_the_cells_once() {
        let cells: Vec<usize> = (0..103).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let b = shuffled(&cells, 20, &mut rng);
        assert_eq!(
            b.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![20, 20, 20, 20, 20, 3]
        );
        let mut all: Vec<usize> = b.concat();
        all.sort_unstable();
        assert_eq!(all, cells);
        assert_eq!(count(103, 20), 6);
        let b = shuffled(&cells[..101], 20, &mut rng);
        assert_eq!(
            b.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![20, 20, 20, 20, 21]
        );
    }

    #[test]
    fn count_matches_shuffled() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for n in 0..60 {
            let cells: Vec<usize> = (0..n).collect();
            for batch_size in [1, 2, 3, 7, 20, 64] {
                let got = shuffled(&cells, batch_size, &mut rng).len();
                assert_eq!(
                    count(n, batch_size),
                    got,
                    "n = {n}, batch size {batch_size}"
                );
            }
        }
    }
}
