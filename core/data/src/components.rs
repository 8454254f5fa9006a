//! Connected components of a binary mask with 26-connectivity, numbered 1..N in the raster order
//! (x fastest) of each component's first voxel, as `cc3d.connected_components` and
//! `scipy.ndimage.label` with a 3×3×3 structure number them; the lesions of lesion-wise metrics.

use ndarray::{Array3, ArrayView3};

/// The components of a mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Components {
    /// Component number of every voxel (0: background).
    pub labels: Array3<u32>,
    /// Voxel count of component `i + 1`.
    pub sizes: Vec<usize>,
    /// Bounding box `(start, end_exclusive)` (z, y, x) of component `i + 1`.
    pub boxes: Vec<([usize; 3], [usize; 3])>,
}

impl Components {
    /// Number of components.
    pub fn count(&self) -> usize {
        self.sizes.len()
    }
}

fn find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let up = parent[parent[x as usize] as usize];
        parent[x as usize] = up;
        x = up;
    }
    x
}

/// The 13 neighbours that precede a voxel in raster order, as (dz, dy, dx).
fn backward_offsets() -> Vec<[isize; 3]> {
    let mut v = vec![];
    for dz in -1..=0isize {
        for dy in -1..=1isize {
            for dx in -1..=1isize {
                let before = dz < 0 || (dz == 0 && (dy < 0 || (dy == 0 && dx < 0)));
                if before {
                    v.push([dz, dy, dx]);
                }
            }
        }
    }
    v
}

/// Labels the 26-connected components of `mask`.
pub fn components(mask: ArrayView3<bool>) -> Components {
    let (nz, ny, nx) = mask.dim();
    let mask = mask.as_standard_layout();
    let m = mask.as_slice().unwrap_or(&[]);
    let mut prov = vec![0u32; m.len()];
    // parent[0] is unused (background).
    let mut parent: Vec<u32> = vec![0];
    let offsets = backward_offsets();
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                let i = (z * ny + y) * nx + x;
                if !m[i] {
                    continue;
                }
                let mut label = 0u32;
                for [dz, dy, dx] in &offsets {
                    let (a, b, c) = (z as isize + dz, y as isize + dy, x as isize + dx);
                    if a < 0 || b < 0 || c < 0 || b >= ny as isize || c >= nx as isize {
                        continue;
                    }
                    let n = prov[(a as usize * ny + b as usize) * nx + c as usize];
                    if n == 0 {
                        continue;
                    }
                    let rn = find(&mut parent, n);
                    if label == 0 {
                        label = rn;
                    } else {
                        let rl = find(&mut parent, label);
                        let (lo, hi) = (rl.min(rn), rl.max(rn));
                        parent[hi as usize] = lo;
                        label = lo;
                    }
                }
                if label == 0 {
                    label = parent.len() as u32;
                    parent.push(label);
                }
                prov[i] = label;
            }
        }
    }
    number_in_raster_order(prov, &mut parent, [nz, ny, nx])
}

/// Final numbers in order of each component's first voxel, with sizes and boxes.
fn number_in_raster_order(mut prov: Vec<u32>, parent: &mut [u32], dims: [usize; 3]) -> Components {
    let [nz, ny, nx] = dims;
    let mut final_of = vec![0u32; parent.len()];
    let mut sizes: Vec<usize> = vec![];
    let mut boxes: Vec<([usize; 3], [usize; 3])> = vec![];
    for (i, v) in prov.iter_mut().enumerate() {
        if *v == 0 {
            continue;
        }
        let root = find(parent, *v) as usize;
        if final_of[root] == 0 {
            sizes.push(0);
            boxes.push(([usize::MAX; 3], [0; 3]));
            final_of[root] = sizes.len() as u32;
        }
        let f = final_of[root];
        *v = f;
        let k = f as usize - 1;
        sizes[k] += 1;
        let p = [i / (ny * nx), (i / nx) % ny, i % nx];
        let (lo, hi) = &mut boxes[k];
        for a in 0..3 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a] + 1);
        }
    }
    Components {
        labels: Array3::from_shape_vec((nz, ny, nx), prov)
            .unwrap_or_else(|_| Array3::zeros((nz, ny, nx))),
        sizes,
        boxes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flood fill over the 26 neighbours from every unlabelled voxel in raster order: the
    /// definition, by brute force.
    fn flood(mask: &Array3<bool>) -> Array3<u32> {
        let (nz, ny, nx) = mask.dim();
        let mut out = Array3::<u32>::zeros((nz, ny, nx));
        let mut next = 0;
        for ((z, y, x), &v) in mask.indexed_iter() {
            if !v || out[[z, y, x]] != 0 {
                continue;
            }
            next += 1;
            let mut stack = vec![[z, y, x]];
            out[[z, y, x]] = next;
            while let Some([a, b, c]) = stack.pop() {
                for dz in -1..=1isize {
                    for dy in -1..=1isize {
                        for dx in -1..=1isize {
                            let (p, q, r) = (a as isize + dz, b as isize + dy, c as isize + dx);
                            if p < 0
                                || q < 0
                                || r < 0
                                || p >= nz as isize
                                || q >= ny as isize
                                || r >= nx as isize
                            {
                                continue;
                            }
                            let at = [p as usize, q as usize, r as usize];
                            if mask[at] && out[at] == 0 {
                                out[at] = next;
                                stack.push(at);
                            }
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn labels_equal_a_flood_fill_in_raster_order() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for density in [0.05, 0.2, 0.35] {
            let mask = Array3::from_shape_fn((9, 11, 13), |_| rng.random::<f64>() < density);
            let c = components(mask.view());
            let want = flood(&mask);
            assert_eq!(c.labels, want, "density {density}");
            let n = *want.iter().max().unwrap_or(&0) as usize;
            assert_eq!(c.count(), n);
            for k in 1..=n {
                let size = want.iter().filter(|&&v| v == k as u32).count();
                assert_eq!(c.sizes[k - 1], size);
            }
        }
    }

    #[test]
    fn cubes_touching_at_a_corner_are_one_component() {
        let mut m = Array3::from_elem((6, 6, 6), false);
        m[[1, 1, 1]] = true;
        m[[2, 2, 2]] = true;
        m[[4, 4, 0]] = true;
        let c = components(m.view());
        assert_eq!(c.count(), 2);
        assert_eq!(c.boxes[0], ([1, 1, 1], [3, 3, 3]));
    }
}
