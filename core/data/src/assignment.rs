//! Minimum-cost assignment of a rectangular cost matrix (the linear sum assignment problem), by
//! shortest augmenting paths with dual potentials (Crouse 2016, the method SciPy's
//! `linear_sum_assignment` uses): one row at a time, a Dijkstra-like search over reduced costs
//! finds the cheapest path to a free column, then the potentials are updated and the path flipped.

use ndarray::{Array2, ArrayView2};

/// The pairs `(row, column)` of a minimum-cost assignment of `min(rows, columns)` pairs, sorted
/// by row. Costs must be finite.
pub fn min_cost_assignment(cost: ArrayView2<f64>) -> Vec<(usize, usize)> {
    let (nr, nc) = cost.dim();
    if nr == 0 || nc == 0 {
        return vec![];
    }
    if nr > nc {
        let t: Array2<f64> = cost.t().to_owned();
        let mut pairs: Vec<(usize, usize)> = assign_wide(t.view())
            .into_iter()
            .map(|(c, r)| (r, c))
            .collect();
        pairs.sort_unstable();
        return pairs;
    }
    assign_wide(cost)
}

/// Dual potentials and the current matching.
struct State {
    u: Vec<f64>,
    v: Vec<f64>,
    col_of_row: Vec<usize>,
    row_of_col: Vec<usize>,
}

const FREE: usize = usize::MAX;

/// The assignment when rows ≤ columns: every row is matched.
fn assign_wide(cost: ArrayView2<f64>) -> Vec<(usize, usize)> {
    let (nr, nc) = cost.dim();
    let mut st = State {
        u: vec![0.0; nr],
        v: vec![0.0; nc],
        col_of_row: vec![FREE; nr],
        row_of_col: vec![FREE; nc],
    };
    for row in 0..nr {
        augment(cost, &mut st, row);
    }
    (0..nr).map(|r| (r, st.col_of_row[r])).collect()
}

/// Matches `start` by the shortest augmenting path over reduced costs.
fn augment(cost: ArrayView2<f64>, st: &mut State, start: usize) {
    let (nr, nc) = cost.dim();
    let mut dist = vec![f64::INFINITY; nc];
    let mut via = vec![FREE; nc];
    let mut row_seen = vec![false; nr];
    let mut col_done = vec![false; nc];
    // Columns not yet settled, scanned from the last.
    let mut open: Vec<usize> = (0..nc).rev().collect();
    let mut reached = 0.0;
    let mut row = start;
    let sink = loop {
        row_seen[row] = true;
        let mut best = f64::INFINITY;
        let mut best_at = 0;
        for (k, &j) in open.iter().enumerate() {
            let reduced = reached + cost[[row, j]] - st.u[row] - st.v[j];
            if reduced < dist[j] {
                via[j] = row;
                dist[j] = reduced;
            }
            // On equal distance prefer a free column: the path ends there.
            if dist[j] < best || (dist[j] == best && st.row_of_col[j] == FREE) {
                best = dist[j];
                best_at = k;
            }
        }
        reached = best;
        let j = open.swap_remove(best_at);
        col_done[j] = true;
        if st.row_of_col[j] == FREE {
            break j;
        }
        row = st.row_of_col[j];
    };
    st.u[start] += reached;
    for r in 0..nr {
        if row_seen[r] && r != start {
            st.u[r] += reached - dist[st.col_of_row[r]];
        }
    }
    for j in 0..nc {
        if col_done[j] {
            st.v[j] -= reached - dist[j];
        }
    }
    let mut j = sink;
    loop {
        let r = via[j];
        st.row_of_col[j] = r;
        let previous = std::mem::replace(&mut st.col_of_row[r], j);
        if r == start {
            break;
        }
        j = previous;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    /// The least total cost over every injective assignment of the smaller side, by enumeration.
    fn brute_force(cost: &Array2<f64>) -> f64 {
        let (nr, nc) = cost.dim();
        fn rec(cost: &Array2<f64>, r: usize, used: &mut Vec<bool>, transposed: bool) -> f64 {
            let (nr, nc) = if transposed {
                (cost.dim().1, cost.dim().0)
            } else {
                cost.dim()
            };
            if r == nr {
                return 0.0;
            }
            let mut best = f64::INFINITY;
            for c in 0..nc {
                if used[c] {
                    continue;
                }
                used[c] = true;
                let here = if transposed {
                    cost[[c, r]]
                } else {
                    cost[[r, c]]
                };
                best = best.min(here + rec(cost, r + 1, used, transposed));
                used[c] = false;
            }
            best
        }
        let transposed = nr > nc;
        let mut used = vec![false; if transposed { nr } else { nc }];
        rec(cost, 0, &mut used, transposed)
    }

    #[test]
    fn the_assignment_costs_the_brute_force_minimum() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for _ in 0..300 {
            let (nr, nc) = (rng.random_range(1..6), rng.random_range(1..6));
            // Few distinct values, so that ties are common.
            let cost = Array2::from_shape_fn((nr, nc), |_| rng.random_range(0..4) as f64 / 4.0);
            let pairs = min_cost_assignment(cost.view());
            assert_eq!(pairs.len(), nr.min(nc));
            let mut rows: Vec<usize> = pairs.iter().map(|p| p.0).collect();
            let mut cols: Vec<usize> = pairs.iter().map(|p| p.1).collect();
            rows.dedup();
            cols.sort_unstable();
            cols.dedup();
            assert_eq!(
                (rows.len(), cols.len()),
                (pairs.len(), pairs.len()),
                "one-to-one"
            );
            let total: f64 = pairs.iter().map(|&(r, c)| cost[[r, c]]).sum();
            assert!(
                (total - brute_force(&cost)).abs() < 1e-12,
                "{cost:?}: {pairs:?}"
            );
        }
    }
}
